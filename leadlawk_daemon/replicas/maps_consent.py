"""The Maps replica's consent interstitial, in the page's language and in Google's structure.

consent.google.com answers a visitor from the EU with a page in the language of ``hl``: a
heading, what cookies are used for, then two forms that each post to ``/save`` with the same
hidden fields (``gl``, ``m``, ``app``, ``pc``, ``continue``, ``x``, ``bl``, ``hl``, ``src``, ``cm``)
and differ in ``set_eom``: ``true`` in the reject-all form, ``false`` in the accept-all form (which
also carries ``set_sc`` and ``set_aps``, the categories it opts into). "More options" is a link
to ``/d?…``, not a form. The words change with the language; the structure does not, which is
why the daemon recognises and answers it by structure (``leadlawk_daemon.maps.consent``).

Languages: English, German, French, Spanish, Italian, Dutch, Polish and Portuguese; any other
``hl`` gets English, as Google's page does for a language it lacks.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from html import escape
from typing import Any, Literal
from urllib.parse import urlencode

__all__ = [
    "CONSENT_LANGUAGES",
    "ConsentAnswer",
    "ConsentWords",
    "answer_of",
    "consent_page",
    "consent_words",
    "parse_loop_clients",
]

ConsentAnswer = Literal["reject", "accept"]


@dataclass(frozen=True, slots=True)
class ConsentWords:
    """What the page says in one language (``gl``: the country its hidden field names)."""

    code: str
    gl: str
    title: str
    intro: str
    uses: tuple[str, str, str]
    choice: str
    reject_all: str
    accept_all: str
    more_options: str
    privacy: str
    terms: str


CONSENT_LANGUAGES: dict[str, ConsentWords] = {
    words.code: words
    for words in (
        ConsentWords(
            "en",
            "GB",
            "Before you continue to Google",
            "We use cookies and data to",
            (
                "Deliver and maintain Google services",
                "Track outages and protect against spam, fraud, and abuse",
                "Measure audience engagement and site statistics to understand how our services are used",
            ),
            "If you choose to “Reject all,” we will not use cookies for these additional purposes.",
            "Reject all",
            "Accept all",
            "More options",
            "Privacy Policy",
            "Terms of Service",
        ),
        ConsentWords(
            "de",
            "DE",
            "Bevor Sie zu Google weitergehen",
            "Wir verwenden Cookies und Daten, um",
            (
                "Google-Dienste bereitzustellen und zu betreiben",
                "Ausfälle zu prüfen und Maßnahmen gegen Spam, Betrug und Missbrauch zu ergreifen",
                "Zielgruppeninteraktionen und Websitestatistiken zu erfassen, um zu verstehen, wie unsere "
                "Dienste genutzt werden",
            ),
            "Wenn Sie „Alle ablehnen“ auswählen, verwenden wir Cookies nicht für diese zusätzlichen Zwecke.",
            "Alle ablehnen",
            "Alle akzeptieren",
            "Weitere Optionen",
            "Datenschutzerklärung",
            "Nutzungsbedingungen",
        ),
        ConsentWords(
            "fr",
            "FR",
            "Avant d'accéder à Google",
            "Nous utilisons des cookies et des données pour :",
            (
                "Fournir et gérer les services Google",
                "Suivre les interruptions de service et vous protéger contre le spam, la fraude et les abus",
                "Mesurer l'engagement de l'audience et les statistiques du site pour comprendre comment nos "
                "services sont utilisés",
            ),
            "Si vous sélectionnez « Tout refuser », nous n'utiliserons pas de cookies à ces fins supplémentaires.",
            "Tout refuser",
            "Tout accepter",
            "Plus d'options",
            "Règles de confidentialité",
            "Conditions d'utilisation",
        ),
        ConsentWords(
            "es",
            "ES",
            "Antes de ir a Google",
            "Usamos cookies y datos para:",
            (
                "Ofrecer y mantener los servicios de Google",
                "Comprobar si hay interrupciones y protegerte frente al spam, el fraude y los abusos",
                "Medir la interacción de la audiencia y las estadísticas del sitio para entender cómo se "
                "usan nuestros servicios",
            ),
            "Si seleccionas «Rechazar todo», no usaremos cookies para estos fines adicionales.",
            "Rechazar todo",
            "Aceptar todo",
            "Más opciones",
            "Política de Privacidad",
            "Términos del Servicio",
        ),
        ConsentWords(
            "it",
            "IT",
            "Prima di continuare su Google",
            "Utilizziamo cookie e dati per:",
            (
                "Fornire e gestire i servizi Google",
                "Monitorare le interruzioni e proteggerci da spam, frodi e abusi",
                "Misurare il coinvolgimento del pubblico e le statistiche dei siti per capire come vengono "
                "utilizzati i nostri servizi",
            ),
            'Se scegli "Rifiuta tutto", non utilizzeremo i cookie per questi scopi aggiuntivi.',
            "Rifiuta tutto",
            "Accetta tutto",
            "Altre opzioni",
            "Norme sulla privacy",
            "Termini di servizio",
        ),
        ConsentWords(
            "nl",
            "NL",
            "Voordat je verdergaat naar Google",
            "We gebruiken cookies en gegevens om:",
            (
                "Google-services te leveren en te onderhouden",
                "Storingen bij te houden en bescherming te bieden tegen spam, fraude en misbruik",
                "Doelgroepbetrokkenheid en sitestatistieken te meten om inzicht te krijgen in hoe onze "
                "services worden gebruikt",
            ),
            "Als je Alles afwijzen kiest, gebruiken we cookies niet voor deze aanvullende doeleinden.",
            "Alles afwijzen",
            "Alles accepteren",
            "Meer opties",
            "Privacybeleid",
            "Servicevoorwaarden",
        ),
        ConsentWords(
            "pl",
            "PL",
            "Zanim przejdziesz do Google",
            "Używamy plików cookie i danych, aby:",
            (
                "Świadczyć i utrzymywać usługi Google",
                "Śledzić przerwy w działaniu i chronić przed spamem, oszustwami oraz nadużyciami",
                "Mierzyć zaangażowanie odbiorców i zbierać statystyki witryn, aby wiedzieć, jak są używane "
                "nasze usługi",
            ),
            "Jeśli klikniesz „Odrzuć wszystko”, nie będziemy używać plików cookie do tych dodatkowych celów.",
            "Odrzuć wszystko",
            "Zaakceptuj wszystko",
            "Więcej opcji",
            "Polityka prywatności",
            "Warunki korzystania z usług",
        ),
        ConsentWords(
            "pt",
            "PT",
            "Antes de continuar para o Google",
            "Utilizamos cookies e dados para:",
            (
                "Fornecer e manter os serviços Google",
                "Monitorizar interrupções e proteger contra spam, fraude e abuso",
                "Medir o envolvimento do público e as estatísticas de sites para compreender a forma como os "
                "nossos serviços são utilizados",
            ),
            'Se escolher "Rejeitar tudo", não utilizaremos cookies para estes fins adicionais.',
            "Rejeitar tudo",
            "Aceitar tudo",
            "Mais opções",
            "Política de Privacidade",
            "Termos de Utilização",
        ),
    )
}

# The build label Google's consent frontend posts back; any stable value does here.
_BUILD = "boq_identityfrontenduiserver_20260105.06_p0"
_BUTTON_CLASS = "VfPpkd-LgbsSe VfPpkd-LgbsSe-OWXEXe-k8QpJ VfPpkd-LgbsSe-OWXEXe-dgl2Hf nCP5yc AjY5Oe DuMIQc LQeN7 XWZjwc"


def consent_words(hl: str | None) -> ConsentWords:
    """``hl=de``, ``hl=pt-PT`` and ``hl=PL`` select their language; anything else is English."""
    code = (hl or "en").split("-")[0].split("_")[0].casefold()
    return CONSENT_LANGUAGES.get(code, CONSENT_LANGUAGES["en"])


def _a(value: object) -> str:
    return escape(str(value), quote=True)


def _t(value: object) -> str:
    return escape(str(value), quote=False)


_MAX_LOOP_CLIENTS = 256


def parse_loop_clients(value: Any) -> list[str] | None:
    """The ``consent_loop_clients`` fault: the client addresses whose answers are not kept (a
    consent loop for one exit while the others get through); ``[]``/``null`` is off."""
    if not isinstance(value, list) or len(value) > _MAX_LOOP_CLIENTS:
        raise ValueError(f"expected a list of at most {_MAX_LOOP_CLIENTS} IP addresses, got {value!r}")
    for address in value:
        try:
            ipaddress.ip_address(address)
        except (TypeError, ValueError):
            raise ValueError(f"{address!r} is not an IP address") from None
    return list(value) or None


def answer_of(set_eom: str | None) -> ConsentAnswer | None:
    """Which answer a posted form gave: ``set_eom=true`` rejects all, ``false`` accepts all."""
    value = (set_eom or "").strip().casefold()
    if value == "true":
        return "reject"
    return "accept" if value == "false" else None


def consent_page(continue_url: str, hl: str | None, reject_form: bool = True) -> str:
    """The interstitial for ``continue_url`` (a path on the replica) in ``hl``'s language; without
    ``reject_form``, accept-all is the only form (as on Google's older one-button page)."""
    words = consent_words(hl)
    shared = {
        "gl": words.gl,
        "m": "0",
        "app": "0",
        "pc": "m",
        "continue": continue_url,
        "x": "6",
        "bl": _BUILD,
        "hl": words.code,
        "src": "1",
        "cm": "2",
    }

    def form(label: str, fields: dict[str, str], jsname: str) -> str:
        hidden = "".join(
            f'<input type="hidden" name="{_a(name)}" value="{_a(value)}">' for name, value in fields.items()
        )
        return (
            f'<form action="/consent/save" method="POST" jsname="{jsname}">{hidden}'
            f'<div class="lssxud"><div class="VfPpkd-dgl2Hf-ppHlrf-sM5MNb" data-is-touch-wrapper="true">'
            f'<button class="{_BUTTON_CLASS}" jscontroller="soHxf" aria-label="{_a(label)}">'
            f'<div class="VfPpkd-Jh9lGc"></div><div class="VfPpkd-J1Ukfc-LhBDec"></div>'
            f'<span jsname="V67aGc" class="VfPpkd-vQzf8d">{_t(label)}</span></button></div></div></form>'
        )

    more = "/consent/d?" + urlencode({k: shared[k] for k in ("continue", "gl", "m", "pc", "cm", "hl", "src")})
    uses = "".join(f'<li class="gowsYd">{_t(use)}</li>' for use in words.uses)
    reject = form(words.reject_all, shared | {"set_eom": "true"}, "b3VHJd") if reject_form else ""
    accept = form(words.accept_all, shared | {"set_eom": "false", "set_sc": "true", "set_aps": "true"}, "O3H1xf")
    body = (
        '<div class="KxvlWc"><div class="HTYrJd"><div class="VDity">'
        f'<h1 class="I90TVb" id="S3BnEe">{_t(words.title)}</h1></div>'
        f'<div class="qqtRac"><div class="KZ9vpc">{_t(words.intro)}</div><ul class="dbXO9">{uses}</ul>'
        f'<div class="Ydhqhd">{_t(words.choice)}</div></div>'
        f'<div class="VtwTSb">{reject}{accept}</div>'
        f'<div class="GzLjMd"><a class="eOjPIe" href="{_a(more)}" aria-label="{_a(words.more_options)}">'
        f'<span class="VfPpkd-vQzf8d">{_t(words.more_options)}</span></a></div>'
        f'<div class="dI7HLd"><a class="BN8Sod" href="https://policies.google.com/privacy?hl={words.code}">'
        f'{_t(words.privacy)}</a> · <a class="BN8Sod" href="https://policies.google.com/terms?hl={words.code}">'
        f"{_t(words.terms)}</a></div></div></div>"
    )
    return (
        f'<!DOCTYPE html><html lang="{words.code}" dir="ltr"><head><meta charset="utf-8">'
        f"<title>{_t(words.title)}</title></head><body>{body}</body></html>"
    )
