using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace ProxyGuard.FunctionalTests.Infrastructure;

/// <summary>An origin server on 127.0.0.1 (HTTPS, and plain HTTP) that records what reaches it.</summary>
public sealed class TestOrigin : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TestOrigin(WebApplication app, int httpsPort, int httpPort)
    {
        _app = app;
        HttpsPort = httpsPort;
        HttpPort = httpPort;
    }

    public int HttpsPort { get; }

    public int HttpPort { get; }

    /// <summary>"METHOD rawTarget" of every request that reached the origin.</summary>
    public ConcurrentQueue<string> Received { get; } = new();

    /// <summary>Raw header block of every request that reached the origin.</summary>
    public ConcurrentQueue<IReadOnlyDictionary<string, string>> ReceivedHeaders { get; } = new();

    /// <summary>Body bytes each <c>POST /count/{name}</c> delivered, counted as they arrive (also when the upload is cut off).</summary>
    public ConcurrentDictionary<string, long> Uploaded { get; } = new(StringComparer.Ordinal);

    /// <summary>Names of the <c>/count/{name}</c> uploads whose body arrived complete.</summary>
    public ConcurrentDictionary<string, bool> UploadsComplete { get; } = new(StringComparer.Ordinal);

    public string? GitRoot { get; set; }

    /// <summary>When set, git requests must carry Basic auth with this password (any user).</summary>
    public string? GitPassword { get; set; }

    public static async Task<TestOrigin> StartAsync(X509Certificate2 certificate, IPAddress? address = null)
    {
        address ??= IPAddress.Loopback;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = null;
            k.Listen(address, 0, o =>
            {
                o.Protocols = HttpProtocols.Http1AndHttp2;
                o.UseHttps(certificate);
            });
            k.Listen(address, 0, o => o.Protocols = HttpProtocols.Http1);
        });
        var app = builder.Build();
        TestOrigin? self = null;
        app.UseWebSockets();
        app.Use(async (context, next) =>
        {
            var raw = context.Features.Get<IHttpRequestFeature>()!.RawTarget;
            self!.Received.Enqueue($"{context.Request.Method} {raw}");
            self.ReceivedHeaders.Enqueue(context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase));
            await next(context);
        });
        app.Map("/echo/{**rest}", async (HttpContext context) =>
        {
            var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            var payload = new
            {
                method = context.Request.Method,
                target = context.Features.Get<IHttpRequestFeature>()!.RawTarget,
                protocol = context.Request.Protocol,
                headers = context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString()),
                body = Encoding.UTF8.GetString(body.ToArray()),
                bodySha256 = Convert.ToHexString(SHA256.HashData(body.ToArray())).ToLowerInvariant(),
            };
            if (context.Request.Headers.TryGetValue("X-Echo-Header", out var echo))
            {
                context.Response.Headers["X-Echoed"] = echo;
            }

            await context.Response.WriteAsJsonAsync(payload);
        });
        app.MapGet("/bytes/{n:long}", async (HttpContext context, long n) =>
        {
            context.Response.ContentLength = n;
            context.Response.ContentType = "application/octet-stream";
            var buffer = new byte[64 * 1024];
            var random = new Random(42);
            for (long sent = 0; sent < n;)
            {
                var chunk = (int)Math.Min(buffer.Length, n - sent);
                random.NextBytes(buffer.AsSpan(0, chunk));
                await context.Response.Body.WriteAsync(buffer.AsMemory(0, chunk));
                sent += chunk;
            }
        });
        app.MapPost("/upload", async (HttpContext context) =>
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[64 * 1024];
            long total = 0;
            int n;
            while ((n = await context.Request.Body.ReadAsync(buffer)) > 0)
            {
                sha.AppendData(buffer, 0, n);
                total += n;
            }

            await context.Response.WriteAsync($"{total} {Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant()}");
        });
        app.MapPost("/count/{name}", async (HttpContext context, string name) =>
        {
            var buffer = new byte[64 * 1024];
            self!.Uploaded.TryAdd(name, 0);
            try
            {
                int n;
                while ((n = await context.Request.Body.ReadAsync(buffer)) > 0)
                {
                    self.Uploaded.AddOrUpdate(name, n, (_, v) => v + n);
                }
            }
            catch (Exception e) when (e is IOException or Microsoft.AspNetCore.Http.BadHttpRequestException or OperationCanceledException)
            {
                return; // cut off before the end: not complete
            }

            self.UploadsComplete[name] = true;
            await context.Response.WriteAsync(self.Uploaded[name].ToString(System.Globalization.CultureInfo.InvariantCulture));
        });
        async Task EchoWebSocketAsync(HttpContext context)
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = 400;
                return;
            }

            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            var buffer = new byte[4096];
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
                    return;
                }

                await socket.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, CancellationToken.None);
            }
        }

        app.Map("/ws", EchoWebSocketAsync);
        app.Map("/ws/{**rest}", EchoWebSocketAsync); // a path per test: events name it
        app.Map("/git/{**rest}", (HttpContext context) => GitCgi.HandleAsync(context, self!));
        app.MapFallback(async (HttpContext context) => await context.Response.WriteAsync("origin ok\n"));

        await app.StartAsync();
        var addresses = app.Urls.ToList();
        int Port(string scheme) => new Uri(addresses.First(a => a.StartsWith(scheme + "://", StringComparison.Ordinal))).Port;
        self = new TestOrigin(app, Port("https"), Port("http"));
        return self;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}

/// <summary>Runs <c>git http-backend</c> as CGI for the smart-HTTP protocol.</summary>
internal static class GitCgi
{
    public static async Task HandleAsync(HttpContext context, TestOrigin origin)
    {
        if (origin.GitPassword is { } password)
        {
            var auth = context.Request.Headers.Authorization.ToString();
            var ok = auth.StartsWith("Basic ", StringComparison.Ordinal)
                && Encoding.UTF8.GetString(Convert.FromBase64String(auth[6..])).EndsWith(":" + password, StringComparison.Ordinal);
            if (!ok)
            {
                context.Response.StatusCode = 401;
                context.Response.Headers.WWWAuthenticate = "Basic realm=\"git\"";
                return;
            }
        }

        var path = context.Request.Path.Value!["/git".Length..];
        var psi = new ProcessStartInfo("git", "http-backend")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.Environment["GIT_PROJECT_ROOT"] = origin.GitRoot!;
        psi.Environment["GIT_HTTP_EXPORT_ALL"] = "1";
        psi.Environment["PATH_INFO"] = path;
        psi.Environment["REQUEST_METHOD"] = context.Request.Method;
        psi.Environment["QUERY_STRING"] = context.Request.QueryString.Value?.TrimStart('?') ?? string.Empty;
        psi.Environment["CONTENT_TYPE"] = context.Request.ContentType ?? string.Empty;
        psi.Environment["REMOTE_USER"] = "test";
        psi.Environment["REMOTE_ADDR"] = "127.0.0.1";
        if (context.Request.Headers.ContentEncoding.Count > 0)
        {
            psi.Environment["HTTP_CONTENT_ENCODING"] = context.Request.Headers.ContentEncoding.ToString();
        }

        if (context.Request.Headers.TryGetValue("Git-Protocol", out var protocol))
        {
            psi.Environment["GIT_PROTOCOL"] = protocol.ToString();
        }

        using var process = Process.Start(psi)!;
        var copyIn = Task.Run(async () =>
        {
            await context.Request.Body.CopyToAsync(process.StandardInput.BaseStream);
            process.StandardInput.Close();
        });
        var stderr = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.BaseStream;
        var headerBytes = new MemoryStream();
        while (true)
        {
            var b = output.ReadByte();
            if (b < 0)
            {
                break;
            }

            headerBytes.WriteByte((byte)b);
            var text = headerBytes.Length >= 4 ? Encoding.ASCII.GetString(headerBytes.GetBuffer(), (int)headerBytes.Length - 4, 4) : string.Empty;
            if (text == "\r\n\r\n" || text.EndsWith("\n\n", StringComparison.Ordinal))
            {
                break;
            }
        }

        foreach (var line in Encoding.ASCII.GetString(headerBytes.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                continue;
            }

            var name = line[..colon];
            var value = line[(colon + 1)..].Trim();
            if (name.Equals("Status", StringComparison.OrdinalIgnoreCase))
            {
                context.Response.StatusCode = int.Parse(value.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            }
            else
            {
                context.Response.Headers.Append(name, value);
            }
        }

        await output.CopyToAsync(context.Response.Body);
        await copyIn;
        await process.WaitForExitAsync();
        _ = await stderr;
    }
}
