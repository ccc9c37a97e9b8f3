"""Settings for TaskMed Conversations, read from the environment only (docs/configuration.md lists them).

Nothing set gives the embedded setup: SQLite, the in-process realtime bus, a local-memory cache and a
development secret key generated once into `.secret_key`. Production (DEBUG off) refuses unsafe values.
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from taskmed.environment import (
    development_secret_key,
    env_bool,
    env_int,
    env_list,
    env_str,
    unsafe_secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core -------------------------------------------------------------------------------------------
# SECRET_KEY signs sessions and tokens. Unset, a development key is generated once and kept out of git.
SECRET_KEY = env_str("SECRET_KEY") or development_secret_key(BASE_DIR / ".secret_key")
# Keys being rotated out, comma-separated: browser sessions, API sessions and erasure marks made under them
# are still recognised (docs/security.md).
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
# DEBUG defaults on only for the embedded setup (no SECRET_KEY given); a configured deployment is
# production unless it says otherwise.
DEBUG = env_bool("DEBUG", default=not env_str("SECRET_KEY"))
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

if not DEBUG:
    if unsafe := unsafe_secret_key(SECRET_KEY):
        raise ImproperlyConfigured(
            f"DEBUG is off but SECRET_KEY {unsafe}. Set SECRET_KEY to a long random value, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
    if not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "DEBUG is off and ALLOWED_HOSTS is empty or a wildcard. "
            "Set ALLOWED_HOSTS to the host names the clinics use, comma-separated."
        )

INSTALLED_APPS = [
    "daphne",  # only for `manage.py runserver`; uvicorn serves in every other case (DESIGN §10)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks_db",
    "conversations",
    "realtime",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "conversations.unavailable.DatabaseUnavailableMiddleware",  # a database away: 503, never 500
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
]

# --- Content Security Policy ----------------------------------------------------------------------
# Scripts only from our own origin, never inline (page data travels in json_script); the stream over
# WebSocket to this host only ('self' covers ws/wss of the same host); attachments from the authorised
# media view; nothing may frame the app. Inline styles are allowed for the admin's and the API docs'
# widgets, which set style attributes; the app's own pages use none.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:", "blob:"],
    "media-src": [CSP.SELF, "blob:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

ROOT_URLCONF = "taskmed.urls"
ASGI_APPLICATION = "taskmed.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "conversations.web.clinics.active_clinic_context",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------------
# DATABASE_URL (postgres://user@host:5432/name) selects PostgreSQL through psycopg 3 with Django's
# connection pool: under ASGI every sync request runs on a fresh thread, so without a pool each one
# would open its own connection and PostgreSQL runs out (DESIGN §10).
DATABASE_URL = env_str("DATABASE_URL")
# Seconds a request waits for a free pooled connection before failing (503).
DB_POOL_TIMEOUT = env_int("DB_POOL_TIMEOUT", 10)
if DATABASE_URL:
    default_db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
    if default_db["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend with a circuit breaker: PostgreSQL away is a 503 at once, not after the pool's wait.
        default_db["ENGINE"] = "taskmed.postgresql"
        options = default_db.setdefault("OPTIONS", {})
        # JIT compilation costs hundreds of milliseconds on short inbox queries and saves nothing on them.
        options.setdefault("options", "-c jit=off")
        from psycopg_pool import ConnectionPool

        options["pool"] = {
            "min_size": env_int("DB_POOL_MIN_SIZE", 2),
            "max_size": env_int("DB_POOL_MAX_SIZE", 10),
            "timeout": DB_POOL_TIMEOUT,
            # A connection is checked as it is handed out: after PostgreSQL restarts, no request gets one
            # of the dead ones (a round trip of an empty query; the webhook's loop path has its own pool,
            # which falls back to this one on a failed statement).
            "check": ConnectionPool.check_connection,
        }
else:
    # WAL and IMMEDIATE transactions let the server and the task worker share the file without
    # "database is locked" errors on concurrent writes.
    default_db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env_str("SQLITE_PATH") or BASE_DIR / "db.sqlite3",
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # Tests use a file too: the stream's database threads read while others write, which an in-memory
        # database (one shared cache, table locks that fail at once) does not allow.
        "TEST": {"NAME": env_str("SQLITE_TEST_PATH") or str(BASE_DIR / ".test-db.sqlite3")},
    }
DATABASES = {"default": default_db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache and the realtime bus ----------------------------------------------------------------
# REDIS_URL selects django-redis for the cache, and Redis pub/sub for the realtime bus between server
# processes (realtime.bus speaks to Redis directly with redis-py: no Channels layer is configured or used).
REDIS_URL = env_str("REDIS_URL")
REDIS_PREFIX = env_str("REDIS_PREFIX", "taskmed")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_PREFIX,
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The list and detail reads are cached only where the cache is shared by every process (Redis): a
# local-memory cache would miss the task worker's changes.
READ_CACHE = env_bool("READ_CACHE", default=bool(REDIS_URL))

# --- Realtime -----------------------------------------------------------------------------------------
# The model that owns an event log and counts its seq (`event_seq`): the stream is handed it, never imports it.
REALTIME_TENANT_MODEL = "conversations.Clinic"
# Client frames a connection may send a minute (past it: an error frame; at twice it: close 4429).
WS_FRAMES_PER_MINUTE = env_int("WS_FRAMES_PER_MINUTE", 100)
# Without Redis (one process), how often each distinct login is re-checked, for access changed by another
# process (with Redis, changes are announced to every process at once).
WS_RECHECK_SECONDS = env_int("WS_RECHECK_SECONDS", 30)
# How long the hub lets a frame that came ahead of a missing one wait before reading the log (ms).
REALTIME_REORDER_MS = env_int("REALTIME_REORDER_MS", 100)
# How often the hub compares each clinic's latest seq with what it delivered: what the bus lost (or, without
# Redis, what the task worker wrote) arrives within this many seconds.
REALTIME_LOG_CHECK_SECONDS = env_int("REALTIME_LOG_CHECK_SECONDS", 5 if REDIS_URL else 1)
# On PostgreSQL the event log is partitioned by month: a month's partition is dropped whole once it is older
# than this many days (`purge_expired`, daily). A screen away longer reloads its lists instead of replaying.
EVENT_LOG_KEEP_DAYS = env_int("EVENT_LOG_KEEP_DAYS", 90)
# Threads (each keeping one pooled database connection) for the async paths' database work.
DB_THREADS = env_int("DB_THREADS", 4)
# Connections a server process uses from its event loop for the webhook's one-statement writes (PostgreSQL;
# 0 sends them to the threads too).
DB_LOOP_CONNECTIONS = env_int("DB_LOOP_CONNECTIONS", 4)
# A connection without a session or Authorization header must send {"type": "auth"} within this.
WS_AUTH_TIMEOUT_SECONDS = env_int("WS_AUTH_TIMEOUT_SECONDS", 5)
# GET /api/events/ waits this long for an event before answering empty.
LONGPOLL_SECONDS = env_int("LONGPOLL_SECONDS", 25)

# --- Background tasks -------------------------------------------------------------------------------
# Deliveries and media downloads run on Django's Tasks framework, stored in the database and run by
# `manage.py db_worker` (started beside the server by `make run`).
# "push": staff's push notifications, apart from deliveries to patients (a worker of their own in production).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "push"]}}

# --- WhatsApp and deliveries -----------------------------------------------------------------------
WHATSAPP_GRAPH_URL = env_str("WHATSAPP_GRAPH_URL", "https://graph.facebook.com/v25.0")
WHATSAPP_TIMEOUT_SECONDS = env_int("WHATSAPP_TIMEOUT_SECONDS", 15)
# Webhook requests refused (no signature or a wrong one) from one address a minute; past it, that address
# is answered 429 before anything is checked (conversations.webhooks.strangers).
WHATSAPP_REFUSALS_PER_MINUTE = env_int("WHATSAPP_REFUSALS_PER_MINUTE", 30)
# Media a patient sends is kept up to this size (WhatsApp's own largest is 100 MB, for documents).
WHATSAPP_MEDIA_MAX_BYTES = env_int("WHATSAPP_MEDIA_MAX_BYTES", 100 * 1024 * 1024)
# Transient failures (no connection, 429, 5xx) are retried this many times, waiting base × 2^n ± jitter.
DELIVERY_MAX_ATTEMPTS = env_int("DELIVERY_MAX_ATTEMPTS", 6)
DELIVERY_RETRY_BASE_SECONDS = env_int("DELIVERY_RETRY_BASE_SECONDS", 5)
# A send's longest time (its media upload and its message, each up to WHATSAPP_TIMEOUT_SECONDS, with room
# to spare): an attempt in flight for longer was interrupted (its worker died); a younger one is running.
DELIVERY_IN_FLIGHT_SECONDS = env_int("DELIVERY_IN_FLIGHT_SECONDS", 4 * WHATSAPP_TIMEOUT_SECONDS)
# Provider statuses whose message never became known are dropped after this many days.
PENDING_STATUS_DAYS = env_int("PENDING_STATUS_DAYS", 7)
# The simulator's ticks after "sent".
SIMULATOR_DELIVERED_AFTER_SECONDS = env_int("SIMULATOR_DELIVERED_AFTER_SECONDS", 2)
SIMULATOR_READ_AFTER_SECONDS = env_int("SIMULATOR_READ_AFTER_SECONDS", 5)

# --- Web Push to staff's devices -------------------------------------------------------------------------
# The VAPID key pair that signs the pushes (`manage.py make_vapid_keys` prints a new one); without both, the
# pages say push is not set up on this server and nothing is sent.
WEB_PUSH_PUBLIC_KEY = env_str("WEB_PUSH_PUBLIC_KEY", "")
WEB_PUSH_PRIVATE_KEY = env_str("WEB_PUSH_PRIVATE_KEY", "")
WEB_PUSH_SUBJECT = env_str("WEB_PUSH_SUBJECT", "mailto:suporte@taskmed.com.br")
# The push services a browser's subscription may point at (a host or its parent domain): the worker posts
# to nothing else, so a forged subscription cannot turn it against another address.
WEB_PUSH_HOSTS = env_list(
    "WEB_PUSH_HOSTS",
    ["fcm.googleapis.com", "push.services.mozilla.com", "notify.windows.com", "push.apple.com"],
)
WEB_PUSH_TIMEOUT_SECONDS = env_int("WEB_PUSH_TIMEOUT_SECONDS", 10)

# --- Authentication ---------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "inbox"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_HTTPONLY = True
# API clients get short-lived access tokens; a refresh token is rotated on use and the old one blacklisted.
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 5)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": SECRET_KEY,
}
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# HTTPS: browsers are told to use only HTTPS for a year (the header is ignored over plain HTTP). Redirecting
# HTTP to HTTPS is the proxy's job in front (deploy/nginx); SECURE_SSL_REDIRECT=1 makes Django do it too,
# which needs the proxy named in TRUSTED_PROXIES (its X-Forwarded-Proto then counts).
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^metrics$", r"^api/health/"]  # probes on each process's own plain-HTTP port
# Secrets at rest (WhatsApp access tokens and app secrets): Fernet keys, newest first (conversations.encryption).
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", [])
# The bearer token a Prometheus scraper sends for /metrics (taskmed.metrics); unset, only signed-in staff.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# --- HTTP API -----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "conversations.api.auth.ClinicJWTAuthentication",
        "conversations.api.auth.ClinicSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["conversations.api.auth.IsClinicMember"],
    "DEFAULT_RENDERER_CLASSES": ["conversations.api.renderers.FastJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "conversations.api.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["conversations.api.throttling.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {  # `auth`: login attempts per client address, API and browser together
        "user": env_str("API_THROTTLE_USER", "600/min"),
        "auth": env_str("API_THROTTLE_AUTH", "20/min"),
        "refresh": env_str("API_THROTTLE_REFRESH", "120/min"),
    },
    "EXCEPTION_HANDLER": "conversations.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# Failed logins per user name (API, browser and admin together) before that name is refused for the rest of
# the window: `N/<count><unit>`, e.g. 10/15min (conversations.rate_limits).
LOGIN_FAILURES_PER_USER = env_str("LOGIN_FAILURES_PER_USER", "10/15min")
SPECTACULAR_SETTINGS = {
    "TITLE": "TaskMed Conversations API",
    "DESCRIPTION": "The conversation inbox of TaskMed's clinics. Every object belongs to the caller's clinic.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}
# Request bodies other than uploaded files; larger ones are refused with 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_BODY_BYTES", 1024 * 1024)
# Any request body, uploads included: larger ones are refused (413) before they are read (taskmed.body_limit).
# The default holds WhatsApp's largest file (a 100 MB document) and the form around it.
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", 101 * 1024 * 1024)

# --- Language and time ------------------------------------------------------------------------------
# Times are stored and sent in UTC; each clinic's own time zone is applied once, where a time is shown.
LANGUAGE_CODE = "pt-br"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Files ------------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "conversations.storage.SafeFileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Logging ----------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# WhatsApp's customer-service window: free text only this long after the patient's latest message; after
# it, only an approved template (Meta refuses anything else, so the product refuses it first).
REPLY_WINDOW_HOURS = env_int("REPLY_WINDOW_HOURS", 24)
# How long the clinic's approved templates, read from the Graph API, are kept before being read again.
TEMPLATES_CACHE_SECONDS = env_int("TEMPLATES_CACHE_SECONDS", 300)
