# The image behind compose.yaml's web, worker, beat and migrate services.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

WORKDIR /app

# The CPU build of torch, from PyTorch's own CPU index: the default wheel on the
# Python package index is the CUDA build, several GB larger.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY pyproject.toml requirements.lock README.md ./
COPY config ./config
COPY embedded ./embedded
COPY observability ./observability
COPY web ./web
COPY kb ./kb
COPY flags ./flags
COPY ingest ./ingest
COPY llm ./llm
COPY chat ./chat
COPY tickets ./tickets
COPY ops ./ops
COPY templates ./templates
COPY static ./static
COPY manage.py ./
RUN pip install --no-cache-dir -c requirements.lock -e .

# Static files are collected at build time; the settings need production values
# to load, and these throwaway ones never leave the build.
RUN DATABASE_URL=postgres://build@localhost/build \
    SECRET_KEY=build-only-$(python -c "import secrets; print(secrets.token_urlsafe(64))") \
    CAIRN_STATIC_ROOT=/app/staticfiles python manage.py collectstatic --noinput

RUN useradd --create-home --uid 10001 cairn && mkdir -p /data/media && chown cairn /data/media
USER cairn
ENV CAIRN_STATIC_ROOT=/app/staticfiles
EXPOSE 8000
CMD ["uvicorn", "config.asgi:application", "--host=0.0.0.0", "--port=8000"]
