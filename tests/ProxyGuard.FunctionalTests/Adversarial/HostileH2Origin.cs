using System.Collections.Concurrent;
using System.IO.Compression;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace ProxyGuard.FunctionalTests.Adversarial;

/// <summary>
/// A hostile HTTP/2-over-TLS origin on 127.0.0.1 (Kestrel, HTTP/2 only) for the adversarial kit: each mode, the
/// first path segment, returns the secret it "knows" through a different part of an HTTP/2 response:
/// <c>trailer</c> (a response trailer value), <c>trailer-forms</c> (trailers with its base64, percent and JSON forms),
/// <c>header-value</c>, <c>header-forms</c>, <c>br</c> (brotli body), <c>gzip-br</c> (gzip then brotli, stacked),
/// <c>br-br</c>, <c>drip</c> (the body one byte per DATA frame with delays, so the value is split across frames),
/// <c>drip-br</c> (a brotli body dripped the same way), <c>json</c> (JSON-escaped in the body), <c>echo</c> (the
/// Authorization header it received, which the proxy substituted, echoed in body and a header).
/// 103 Early Hints are not a mode: Kestrel has no API to send a 1xx response other than 100-continue and 101.
/// </summary>
public sealed class HostileH2Origin : IAsyncDisposable
{
    private readonly WebApplication _app;

    private HostileH2Origin(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The secret the origin leaks.</summary>
    public string Known { get; set; } = string.Empty;

    /// <summary>The protocol of every request the origin served (the proxy must reach it over HTTP/2).</summary>
    public ConcurrentQueue<string> Protocols { get; } = new();

    public static readonly string[] Modes =
        ["trailer", "trailer-forms", "header-value", "header-forms", "br", "gzip-br", "br-br", "drip", "drip-br", "json", "echo"];

    public static async Task<HostileH2Origin> StartAsync(X509Certificate2 certificate)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o =>
        {
            o.Protocols = HttpProtocols.Http2;
            o.UseHttps(certificate);
        }));
        var app = builder.Build();
        HostileH2Origin? self = null;
        app.Run(context => self!.ServeAsync(context));
        await app.StartAsync();
        var address = app.Urls.First();
        self = new HostileH2Origin(app, new Uri(address).Port);
        return self;
    }

    private async Task ServeAsync(HttpContext context)
    {
        Protocols.Enqueue(context.Request.Protocol);
        var mode = context.Request.Path.Value!.Trim('/').Split('/')[0];
        var secret = Known;
        var response = context.Response;
        response.ContentType = "text/plain; charset=utf-8";
        switch (mode)
        {
            case "trailer":
                response.DeclareTrailer("x-leak");
                await response.WriteAsync("ok\n");
                response.AppendTrailer("x-leak", secret);
                break;
            case "trailer-forms":
                response.DeclareTrailer("x-b64");
                await response.WriteAsync("ok\n");
                response.AppendTrailer("x-b64", Convert.ToBase64String(Encoding.UTF8.GetBytes(secret)));
                response.AppendTrailer("x-pct", Uri.EscapeDataString(secret));
                response.AppendTrailer("x-json", JsonSerializer.Serialize(secret));
                break;
            case "header-value":
                response.Headers["x-leak"] = secret;
                response.Headers["set-cookie"] = "s=" + secret.Replace(";", "", StringComparison.Ordinal);
                await response.WriteAsync("ok\n");
                break;
            case "header-forms":
                response.Headers["x-b64"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(secret));
                response.Headers["x-pct"] = Uri.EscapeDataString(secret);
                response.Headers["location"] = "https://example.test/?t=" + Uri.EscapeDataString(secret);
                await response.WriteAsync("ok\n");
                break;
            case "br":
                await WriteEncodedAsync(response, secret, "br", drip: false);
                break;
            case "gzip-br":
                await WriteEncodedAsync(response, secret, "gzip, br", drip: false);
                break;
            case "br-br":
                await WriteEncodedAsync(response, secret, "br, br", drip: false);
                break;
            case "drip":
                await DripAsync(response, Encoding.UTF8.GetBytes("before " + secret + " after\n"));
                break;
            case "drip-br":
                await WriteEncodedAsync(response, secret, "br", drip: true);
                break;
            case "json":
                response.ContentType = "application/json";
                await response.WriteAsync(JsonSerializer.Serialize(new { token = secret }));
                break;
            case "echo":
                var authorization = context.Request.Headers.Authorization.ToString();
                response.Headers["x-echo"] = authorization;
                await response.WriteAsync("you sent: " + authorization + "\n");
                break;
            default:
                response.StatusCode = 404;
                break;
        }
    }

    /// <summary>Applies the codings left to right (the order Content-Encoding lists them in).</summary>
    private static async Task WriteEncodedAsync(HttpResponse response, string secret, string codings, bool drip)
    {
        var body = Encoding.UTF8.GetBytes("the token is " + secret + " (twice: " + secret + ")\n");
        foreach (var coding in codings.Split(',', StringSplitOptions.TrimEntries))
        {
            using var output = new MemoryStream();
            await using (Stream compressor = coding == "br"
                ? new BrotliStream(output, CompressionLevel.Optimal, leaveOpen: true)
                : new GZipStream(output, CompressionLevel.Optimal, leaveOpen: true))
            {
                await compressor.WriteAsync(body);
            }

            body = output.ToArray();
        }

        response.Headers.ContentEncoding = codings;
        if (drip)
        {
            await DripAsync(response, body);
        }
        else
        {
            response.ContentLength = body.Length;
            await response.Body.WriteAsync(body);
        }
    }

    /// <summary>One byte per DATA frame (a flush each), 5 ms apart: at most a few hundred frames.</summary>
    private static async Task DripAsync(HttpResponse response, byte[] body)
    {
        await response.StartAsync();
        foreach (var b in body)
        {
            await response.Body.WriteAsync(new[] { b });
            await response.Body.FlushAsync();
            await Task.Delay(5);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
