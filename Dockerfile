# scimgate: one static-ish binary (bundled SQLite, libpq and OpenSSL) on a slim base.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/scimgate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /data scimgate \
    && mkdir -p /data && chown scimgate /data
COPY --from=build /src/target/release/scimgate /usr/local/bin/scimgate
USER scimgate
WORKDIR /data
ENV SCIMGATE_LISTEN=0.0.0.0:5225
EXPOSE 5225
ENTRYPOINT ["scimgate"]
CMD ["serve"]
