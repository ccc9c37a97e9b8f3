"""The clinic manager's pages: `/settings/hours/` (*Horário de atendimento*: every member reads it, clinic
admins change it with a plain form that calls one action) and `/reports/` (clinic admins: the figures of a
range of days as charts, each with its table, and the CSV)."""

import re
import zoneinfo
from datetime import date, timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from conversations import clinic_hours, reports
from conversations.actions.hours import MAX_AWAY_MESSAGE_CHARS, MAX_TARGET_MINUTES, set_business_hours
from conversations.errors import ActionError, InvalidInput
from conversations.hours import DAYS, MINUTES_A_DAY, minutes_of, whole_hours
from conversations.models import AwayMode, Membership, Role
from conversations.storable import storable
from conversations.web import charts
from conversations.web.inbox import workspace

DAY_NAMES = {
    "mon": "Segunda",
    "tue": "Terça",
    "wed": "Quarta",
    "thu": "Quinta",
    "fri": "Sexta",
    "sat": "Sábado",
    "sun": "Domingo",
}
TIME = re.compile(r"^(\d{1,2})(?:[:h](\d{2})?)?$")
SPLIT_INTERVAL = re.compile(r"\s*(?:-|–|—|\bàs\b|\ba\b)\s*")
ZONES = sorted(
    z
    for z in zoneinfo.available_timezones()
    if "/" in z and not z.startswith(("Etc/", "SystemV/")) and whole_hours(z)  # the reports count by the hour
)
BRAZIL_ZONES = [
    z
    for z in ZONES
    if z.startswith("America/")
    and z.split("/")[1]
    in {
        "Sao_Paulo",
        "Manaus",
        "Belem",
        "Fortaleza",
        "Recife",
        "Bahia",
        "Cuiaba",
        "Campo_Grande",
        "Porto_Velho",
        "Boa_Vista",
        "Rio_Branco",
        "Maceio",
        "Araguaina",
        "Santarem",
        "Noronha",
        "Eirunepe",
    }
]


def _time_of(text: str) -> str:
    """'8' or '8h' → '08:00', '8:30' or '8h30' → '08:30', '24:00' stays; ValueError otherwise."""
    found = TIME.match(text.strip().lower())
    if not found:
        raise ValueError(text)
    value = f"{int(found.group(1)):02d}:{found.group(2) or '00'}"
    minutes_of(value)  # 00:00 to 24:00
    return value


def intervals_of(text: str) -> list[list[str]]:
    """A day as the form writes it — "08:00–12:00, 13:30–18:00" (or "8h às 12h; 13h30 às 18h"); empty is
    closed — as the API's intervals. ValueError with the piece it could not read."""
    intervals = []
    for piece in re.split(r"[,;\n]", text):
        if not piece.strip():
            continue
        ends = SPLIT_INTERVAL.split(piece.strip())
        if len(ends) != 2:
            raise ValueError(piece.strip())
        try:
            intervals.append([_time_of(ends[0]), _time_of(ends[1])])
        except ValueError:
            raise ValueError(piece.strip()) from None
    return intervals


def day_text(intervals: list[list[str]]) -> str:
    return ", ".join(f"{start}–{end}" for start, end in intervals)


def dates_of(text: str) -> list[str]:
    """Closed dates, one a line (or separated by commas): 25/12/2026 or 2026-12-25."""
    found = []
    for piece in re.split(r"[,;\n]", text):
        piece = piece.strip()
        if not piece:
            continue
        parts = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", piece)
        try:
            day = date(int(parts[3]), int(parts[2]), int(parts[1])) if parts else date.fromisoformat(piece)
        except ValueError:
            raise ValueError(piece) from None
        found.append(day.isoformat())
    return found


def _checked_form(post) -> tuple[dict, dict[str, str]]:
    """The form's fields as the action takes them, and an error (pt-BR) per field that cannot be read."""
    errors, week = {}, {}
    for day in DAYS:
        try:
            week[day] = intervals_of(storable(post.get(f"day_{day}", "")))
        except ValueError as bad:
            errors[f"day_{day}"] = f"Não entendi “{bad}”: escreva como 08:00–12:00, 13:30–18:00."
            continue
        spans = sorted((minutes_of(s), minutes_of(e), f"{s}–{e}") for s, e in week[day])
        for start, end, shown in spans:
            if start >= end or start == MINUTES_A_DAY:
                errors[f"day_{day}"] = f"{shown} termina antes de começar."
        for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):
            if start < end:
                errors[f"day_{day}"] = f"{first} e {second} se sobrepõem."
    try:
        closed_dates = dates_of(storable(post.get("closed_dates", "")))
    except ValueError as bad:
        errors["closed_dates"], closed_dates = f"“{bad}” não é uma data (use 25/12/2026).", []
    target = post.get("first_response_target_minutes", "")
    if not (target.isascii() and target.isdigit() and len(target) <= 6) or not 1 <= int(target) <= MAX_TARGET_MINUTES:
        errors["first_response_target_minutes"] = f"Um número inteiro de minutos, de 1 a {MAX_TARGET_MINUTES}."
    away_mode = post.get("away_mode", "")
    if away_mode not in AwayMode.values:
        errors["away_mode"] = "Escolha quando a mensagem de ausência é enviada."
    away_message = storable(post.get("away_message", "")).strip()
    if len(away_message) > MAX_AWAY_MESSAGE_CHARS:
        errors["away_message"] = f"No máximo {MAX_AWAY_MESSAGE_CHARS} caracteres."
    elif away_mode in (AwayMode.STAFF, AwayMode.ALWAYS) and not away_message:
        errors["away_message"] = "Escreva a mensagem que o paciente recebe, ou escolha “Nunca”."
    timezone_name = post.get("timezone", "")
    if timezone_name not in ZONES:
        errors["timezone"] = "Escolha um fuso horário da lista."
    fields = {
        "timezone_name": timezone_name,
        "week": week,
        "closed_dates": closed_dates,
        "away_mode": away_mode,
        "away_message": away_message,
        "first_response_target_minutes": int(target) if "first_response_target_minutes" not in errors else 0,
    }
    return fields, errors


def business_hours_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    clinic = membership.clinic
    can_manage = membership.role == Role.ADMIN
    document = clinic_hours.document(clinic)
    values = {f"day_{day}": day_text(document["week"][day]) for day in DAYS} | {
        "closed_dates": "\n".join(date.fromisoformat(d).strftime("%d/%m/%Y") for d in document["closed_dates"]),
        "away_mode": document["away_mode"],
        "away_message": document["away_message"],
        "first_response_target_minutes": document["first_response_target_minutes"],
        "timezone": document["timezone"],
    }
    errors, status = {}, 200
    if request.method == "POST":
        if not can_manage:
            return HttpResponseForbidden("Só os administradores da clínica alteram o horário de atendimento.")
        fields, errors = _checked_form(request.POST)
        values |= {key: request.POST.get(key, "") for key in values}
        if not errors:
            try:
                set_business_hours(clinic=clinic, actor=request.user, ip=request.META.get("REMOTE_ADDR"), **fields)
            except (InvalidInput, ActionError) as refused:
                errors["form"] = f"Não foi salvo: {refused.detail}"
            else:
                messages.success(request, "Horário de atendimento salvo.")
                return redirect("business-hours")
        status = 400
    clinic.refresh_from_db(fields=["timezone"])
    state = clinic_hours.open_state(clinic, timezone.now())
    return render(
        request,
        "conversations/business_hours.html",
        {
            "clinic": clinic,
            "section": "hours",
            "can_manage": can_manage,
            "days": [(day, DAY_NAMES[day], f"day_{day}") for day in DAYS],
            "values": values,
            "errors": errors,
            "away_modes": AwayMode.choices,
            "zones": BRAZIL_ZONES + [z for z in ZONES if z not in BRAZIL_ZONES],
            "open_now": state["open"],
            "next_change": _when(clinic_hours.of(clinic.pk).next_change(timezone.now()), clinic),
        },
        status=status,
    )


business_hours_page = workspace(business_hours_page, methods=("GET", "POST"))


def _when(at, clinic) -> str:
    """'segunda, 08/12 às 08:00' in the clinic's time, or '' for None."""
    if at is None:
        return ""
    local = at.astimezone(clinic.tzinfo)
    return f"{DAY_NAMES[DAYS[local.weekday()]].lower()}, {local:%d/%m} às {local:%H:%M}"


def duration_text(seconds: float | None) -> str:
    """'—', '45 s', '12 min', '2 h 05 min', '3 d 4 h'."""
    if seconds is None:
        return "—"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def reports_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    if membership.role != Role.ADMIN:
        return HttpResponseForbidden("Só os administradores da clínica veem os relatórios.")
    clinic = membership.clinic
    today = timezone.now().astimezone(clinic.tzinfo).date()
    try:
        period = reports.period_of(clinic, request.GET.get("from"), request.GET.get("to"), today=today)
    except InvalidInput as refused:
        messages.error(request, f"Período inválido ({refused.detail}); mostrando os últimos 30 dias.")
        period = reports.period_of(clinic, None, None, today=today)
    figures = reports.report(period)
    days = [date.fromisoformat(day["date"]).strftime("%d/%m") for day in figures["by_day"]]
    by_day = figures["by_day"]
    durations = [
        ("Primeira resposta", figures["first_response"]),
        ("Resolução", figures["resolution"]),
    ]
    return render(
        request,
        "conversations/reports.html",
        {
            "clinic": clinic,
            "section": "reports",
            "figures": figures,
            "period": period,
            "previous": {"from": period.first - timedelta(days=30), "to": period.first - timedelta(days=1)},
            "csv_url": f"{reverse('api-reports')}?from={period.first}&to={period.last}&format=csv",
            "conversations_chart": charts.bars_by_day(
                "Conversas abertas e resolvidas por dia",
                days,
                [("Abertas", [d["opened"] for d in by_day]), ("Resolvidas", [d["resolved"] for d in by_day])],
            ),
            "messages_chart": charts.bars_by_day(
                "Mensagens recebidas e enviadas por dia",
                days,
                [("Recebidas", [d["inbound"] for d in by_day]), ("Enviadas", [d["outbound"] for d in by_day])],
            ),
            "share_chart": charts.share(
                "Quem respondeu os atendimentos",
                [("Só o assistente", figures["answered_by"]["assistant"]), ("Equipe", figures["answered_by"]["staff"])],
            ),
            "heatmap": charts.heatmap("Mensagens de pacientes por dia da semana e hora", figures["by_hour"]),
            "durations": [
                {
                    "name": name,
                    "count": found["count"],
                    "median": duration_text(found["median_seconds"]),
                    "p90": duration_text(found["p90_seconds"]),
                    "business_median": duration_text(found["business_median_seconds"]),
                    "business_p90": duration_text(found["business_p90_seconds"]),
                }
                for name, found in durations
            ],
            "members": [
                m | {"median": duration_text(m["first_response_median_seconds"])} for m in figures["by_member"]
            ],
            "heat_rows": [(DAY_NAMES[day], figures["by_hour"][n]) for n, day in enumerate(DAYS)],
            "hours": range(24),
            "days_table": [{**d, "shown": shown} for d, shown in zip(by_day, days, strict=True)],
        },
    )


reports_page = workspace(reports_page)
