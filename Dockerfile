FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api ./api
COPY db ./db
COPY scorecards ./scorecards
COPY client ./client
RUN pip install --no-cache-dir . && useradd --system kinerja
USER kinerja
ENV KINERJA_HOST=0.0.0.0 KINERJA_PORT=8000
EXPOSE 8000
CMD ["kinerja", "serve"]
