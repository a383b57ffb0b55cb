using System.IO.Compression;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace ProxyGuard.FunctionalTests.Secrets;

/// <summary>
/// An HTTPS origin on 127.0.0.1 that always answers compressed (ignoring Accept-Encoding) with the
/// request's Authorization header and a text it was given (e.g. a real value it "knows").
/// </summary>
public sealed class CompressingOrigin : IAsyncDisposable
{
    private readonly WebApplication _app;

    private CompressingOrigin(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public int Port { get; }

    /// <summary>Included in every response body.</summary>
    public string Known { get; set; } = string.Empty;

    public static async Task<CompressingOrigin> StartAsync(X509Certificate2 certificate)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.UseHttps(certificate)));
        var app = builder.Build();
        CompressingOrigin? self = null;
        app.Map("/{encoding}", async (HttpContext context, string encoding) =>
        {
            var text = $"{{\"authorization\":\"{context.Request.Headers.Authorization}\",\"known\":\"{self!.Known}\",\"pad\":\"{new string('x', 2000)}\"}}";
            var compressed = new MemoryStream();
            await using (Stream z = encoding switch
                         {
                             "br" => new BrotliStream(compressed, CompressionLevel.Fastest, leaveOpen: true),
                             "deflate" => new ZLibStream(compressed, CompressionLevel.Fastest, leaveOpen: true),
                             _ => new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true),
                         })
            {
                await z.WriteAsync(Encoding.UTF8.GetBytes(text));
            }

            context.Response.ContentType = "application/json";
            context.Response.Headers.ContentEncoding = encoding;
            context.Response.ContentLength = compressed.Length;
            await context.Response.Body.WriteAsync(compressed.ToArray());
        });
        await app.StartAsync();
        self = new CompressingOrigin(app, new Uri(app.Urls.First()).Port);
        return self;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
