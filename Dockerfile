# Builds the cdc command into a small image (see docker-compose.yml).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# docker build --build-arg VERSION=v1.2.0 . : what cdc version prints.
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/cdc ./cmd/cdc

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/cdc /usr/local/bin/cdc
ENTRYPOINT ["/usr/local/bin/cdc"]
CMD ["run", "--config", "/etc/cdc/cdc.yaml", "--admin-addr", ":9187"]
