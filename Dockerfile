# Unitalk for Bitrix24: one image for the release step, web, worker and beat (compose.yaml).
# Production install: the package and its dependencies, no test extras; runs as a non-root user
# on a read-only root filesystem (every writable path comes from the environment;
# docs/operations.md, "Containers").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    APP_VAR_DIR=/var/lib/unitalk-app \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    GUNICORN_WORKER_TMP_DIR=/dev/shm \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /app

# Dependencies first (cached while only code changes): the project metadata and packages. The
# simulators (sandbox/) are left out: production never installs them (docs/sandbox.md).
COPY pyproject.toml ./
COPY bitrixapp ./bitrixapp
COPY integration ./integration
RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info \
    && python -m compileall -q /app/bitrixapp /app/integration

# Templates, static sources, translations and the process configuration beside the packages:
# the settings find them from the code tree (PYTHONPATH=/app), not from site-packages.
COPY templates ./templates
COPY static ./static
COPY locale ./locale
COPY manage.py gunicorn.conf.py Procfile ./

# Static files are collected into the image, so the release step only migrates and the tree
# stays read-only. The secrets here exist only for this build step (settings refuse to load
# without them); they are not in the image's environment.
RUN DJANGO_SECRET_KEY=collectstatic-only \
    FIELD_ENCRYPTION_KEY=Y29sbGVjdHN0YXRpYy1vbmx5LW5vdC1hLWtleS0hISE= \
    APP_VAR_DIR=/tmp/build-var \
    python manage.py collectstatic --noinput \
    && rm -rf /tmp/build-var

# Celery warns when started as root, and nothing here needs root: a fixed uid the volumes can
# be given to, and the one folder it writes (beat's schedule; the embedded fallbacks).
RUN groupadd --system --gid 10001 unitalk \
    && useradd --system --uid 10001 --gid unitalk --no-create-home --home-dir /var/lib/unitalk-app unitalk \
    && install -d -o unitalk -g unitalk -m 0750 /var/lib/unitalk-app
USER 10001:10001

EXPOSE 8000
# The web process; compose.yaml gives release, worker and beat their own commands.
CMD ["gunicorn", "bitrixapp.wsgi", "--config", "gunicorn.conf.py"]
