using System.Text;
using ProxyGuard.FunctionalTests.Infrastructure;

namespace ProxyGuard.FunctionalTests.Audit;

/// <summary>
/// What a client got back, with the proxy's <c>X-ProxyGuard-Reason</c> and <c>X-ProxyGuard-Decision</c> headers;
/// <see cref="Status"/> 0 when the proxy refused the CONNECT (no response).
/// </summary>
public sealed record Reply(int Status, string? Reason, string Body, string? Decision = null);

/// <summary>Requests through a proxy, each on a new connection (so every HTTPS request is exactly one CONNECT).</summary>
public static class Traffic
{
    public static string Marker() => Guid.NewGuid().ToString("N")[..12];

    public static async Task<Reply> SendAsync(
        ProxyProcess proxy, HttpMethod method, string url, string? body = null, IEnumerable<(string Name, string Value)>? headers = null)
    {
        using var client = ProxyClients.Create(proxy.ProxyUrl, proxy.CaPath);
        return await SendAsync(client, method, url, body, headers);
    }

    public static async Task<Reply> SendAsync(
        HttpClient client, HttpMethod method, string url, string? body = null, IEnumerable<(string Name, string Value)>? headers = null)
    {
        using var request = new HttpRequestMessage(method, url);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "text/plain");
        }

        foreach (var (name, value) in headers ?? [])
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        try
        {
            using var response = await client.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            var reason = response.Headers.TryGetValues("X-ProxyGuard-Reason", out var values) ? values.First() : null;
            var decision = response.Headers.TryGetValues("X-ProxyGuard-Decision", out var decisions) ? decisions.First() : null;
            return new Reply((int)response.StatusCode, reason, text, decision);
        }
        catch (HttpRequestException)
        {
            return new Reply(0, null, string.Empty);
        }
    }

    public static Task<Reply> GetAsync(ProxyProcess proxy, string url) => SendAsync(proxy, HttpMethod.Get, url);

    /// <summary>Polls <paramref name="condition"/> until it holds; fails after <paramref name="timeoutSeconds"/>.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, int timeoutSeconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {timeoutSeconds} s waiting for {what}");
            }

            await Task.Delay(100);
        }
    }
}
