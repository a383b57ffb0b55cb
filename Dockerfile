# ProxyGuard container image.
#   docker build -t proxyguard .
#   docker run -v ./policy:/etc/proxyguard:ro -v pg-data:/var/lib/proxyguard -p 8080:8080 proxyguard
# The publish step below is the one tests/ProxyGuard.FunctionalTests/Ecosystem/PackagingTests.cs runs
# (and then starts the published output with this file's ENTRYPOINT, CMD and HEALTHCHECK).

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/ src/
RUN dotnet publish src/ProxyGuard -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
# Policy (read-only), data (events, admin token, placeholder key) and the CA (key mode 0600) live
# outside the image, so the root file system can be mounted read-only.
RUN mkdir -p /etc/proxyguard /var/lib/proxyguard/ca \
 && chown -R "$APP_UID" /var/lib/proxyguard \
 && chmod 0700 /var/lib/proxyguard /var/lib/proxyguard/ca
COPY --from=build /app /app
# MALLOC_ARENA_MAX=2: glibc otherwise keeps up to 8 malloc arenas per core, each with its own high-water mark,
# and the proxy's native memory creeps for minutes before levelling off (docs/reliability.md, soak).
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    DOTNET_NOLOGO=1 \
    DOTNET_EnableDiagnostics=0 \
    MALLOC_ARENA_MAX=2
USER $APP_UID
VOLUME ["/etc/proxyguard", "/var/lib/proxyguard", "/var/lib/proxyguard/ca"]
EXPOSE 8080
# The admin API stays on the container's loopback (a sidecar in the same pod shares it); publish
# it deliberately with --admin 0.0.0.0:9090 and a network policy when metrics must be scraped.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["dotnet", "/app/proxyguard.dll"]
CMD ["run", "--policy", "/etc/proxyguard/policy.yaml", "--listen", "0.0.0.0:8080", "--admin", "127.0.0.1:9090", "--ca-dir", "/var/lib/proxyguard/ca", "--data-dir", "/var/lib/proxyguard", "--json-logs"]
