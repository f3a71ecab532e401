"""Google Maps: the parser, the browser and the scraping flow."""
