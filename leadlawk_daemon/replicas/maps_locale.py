"""The words the Maps replica's pages use, in the languages its ``hl=`` parameter selects.

Google localizes labels a parser reads ("5,0 Sterne 25 Rezensionen", the end-of-list marker),
and number formats (decimal comma, thousands separators): a parser that only knows English
breaks on them. Unknown languages fall back to English, as Google's do for unsupported ones.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LOCALES", "Locale", "locale_for"]


@dataclass(frozen=True, slots=True)
class Locale:
    code: str
    decimal: str
    thousands: str
    stars: str  # aria-label of a card's rating: {rating} and {count}
    panel_stars: str  # {rating}
    panel_reviews: str  # {count}
    no_reviews: str
    end_of_list: str
    results_for: str
    website: str
    directions: str
    address: str
    phone: str
    plus_code: str
    open: str
    closed: str
    closes: str
    opens: str
    open_24: str
    people_also: str
    book_online: str
    days: tuple[str, ...]
    # The banner of Google's signed-out "limited view" (since February 2026).
    limited_view: str = "You're seeing a limited view of Google Maps"

    def number(self, value: int) -> str:
        return f"{value:,}".replace(",", self.thousands)

    def rating(self, value: float) -> str:
        return f"{value:.1f}".replace(".", self.decimal)

    def hours_text(self, text: str) -> str:
        """Hours are generated in English; only the words change between languages here."""
        if text == "Closed":
            return self.closed
        if text == "Open 24 hours":
            return self.open_24
        return text

    def day(self, english_day: str) -> str:
        return self.days[_ENGLISH_DAYS.index(english_day)]


_ENGLISH_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

LOCALES: dict[str, Locale] = {
    "en": Locale(
        code="en", decimal=".", thousands=",", stars="{rating} stars {count} Reviews",
        panel_stars="{rating} stars ", panel_reviews="{count} reviews", no_reviews="No reviews",
        end_of_list="You've reached the end of the list.", results_for="Results for {query}",
        website="Website", directions="Directions", address="Address", phone="Phone",
        plus_code="Plus code", open="Open", closed="Closed", closes="Closes", opens="Opens",
        open_24="Open 24 hours", people_also="People also search for", book_online="Book online",
        days=_ENGLISH_DAYS,
    ),
    "de": Locale(
        code="de", decimal=",", thousands=".", stars="{rating} Sterne {count} Rezensionen",
        panel_stars="{rating} Sterne ", panel_reviews="{count} Rezensionen", no_reviews="Keine Rezensionen",
        end_of_list="Das Ende der Liste ist erreicht.", results_for="Ergebnisse für {query}",
        website="Website", directions="Route", address="Adresse", phone="Telefon",
        plus_code="Plus Code", open="Geöffnet", closed="Geschlossen", closes="Schließt um",
        opens="Öffnet um", open_24="24 Stunden geöffnet", people_also="Ähnliche Suchanfragen",
        book_online="Online buchen",
        limited_view="Die Ansicht ist beschränkt und du siehst nur einen Teil der Google Maps-Daten",
        days=("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    ),
    "fr": Locale(
        code="fr", decimal=",", thousands="\u202f", stars="{rating} étoiles {count} avis",
        panel_stars="{rating} étoiles ", panel_reviews="{count} avis", no_reviews="Aucun avis",
        end_of_list="Vous êtes arrivé à la fin de la liste.", results_for="Résultats pour {query}",
        website="Site Web", directions="Itinéraire", address="Adresse", phone="Téléphone",
        plus_code="Plus Code", open="Ouvert", closed="Fermé", closes="Ferme à", opens="Ouvre à",
        open_24="Ouvert 24h/24", people_also="Autres recherches", book_online="Réserver en ligne",
        limited_view="Vous voyez une version limitée de Google Maps",
        days=("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    ),
    "es": Locale(
        code="es", decimal=",", thousands=".", stars="{rating} estrellas {count} reseñas",
        panel_stars="{rating} estrellas ", panel_reviews="{count} reseñas", no_reviews="No hay reseñas",
        end_of_list="Has llegado al final de la lista.", results_for="Resultados de {query}",
        website="Sitio web", directions="Cómo llegar", address="Dirección", phone="Teléfono",
        plus_code="Plus Code", open="Abierto", closed="Cerrado", closes="Cierra a las",
        opens="Abre a las", open_24="Abierto 24 horas", people_also="También se buscó",
        book_online="Reservar online",
        limited_view="Estás viendo una vista limitada de Google Maps",
        days=("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    ),
}


def locale_for(hl: str | None) -> Locale:
    """``hl=de``, ``hl=de-DE`` and ``hl=DE`` all select German; anything unknown is English."""
    code = (hl or "en").split("-")[0].split("_")[0].casefold()
    return LOCALES.get(code, LOCALES["en"])
