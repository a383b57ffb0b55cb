using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

namespace ProxyGuard.Secrets.Resolution;

/// <summary>Reads one field of a KV v2 secret: GET {addr}/v1/MOUNT/data/PATH.</summary>
internal sealed class VaultClient : IDisposable
{
    private const int MaxResponseBytes = 1024 * 1024;
    private const int MaxRedirects = 3;

    private readonly VaultOptions _options;
    private readonly TimeSpan _timeout;
    private readonly int _maxFileBytes;
    private readonly HttpClient? _http;
    private readonly string? _configurationError;
    private readonly X509Certificate2Collection? _caCertificates;

    public VaultClient(VaultOptions options, TimeSpan timeout, int maxFileBytes)
    {
        _options = options;
        _timeout = timeout;
        _maxFileBytes = maxFileBytes;
        _configurationError = CheckConfiguration(options);
        if (_configurationError is not null)
        {
            return;
        }

#pragma warning disable CA2000 // owned by the HttpClient below (disposed with it), or disposed when the CA file fails
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false, // redirects are followed by hand, same origin only (the token must not travel elsewhere)
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            ConnectTimeout = timeout,
            AutomaticDecompression = DecompressionMethods.None,
        };
        if (options.CaFile is not null)
        {
            try
            {
                var caCertificates = new X509Certificate2Collection();
                caCertificates.ImportFromPemFile(options.CaFile);
                _caCertificates = caCertificates;
                handler.SslOptions.RemoteCertificateValidationCallback = ValidateServerCertificate;
            }
            catch (Exception ex) when (ex is IOException or CryptographicException or UnauthorizedAccessException)
            {
                _configurationError = $"cannot load VAULT_CACERT '{options.CaFile}': {ex.GetType().Name}";
                handler.Dispose();
                return;
            }
        }

        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
#pragma warning restore CA2000
    }

    public async Task<string> ReadFieldAsync(SecretReference reference, CancellationToken ct)
    {
        if (_configurationError is not null || _http is null)
        {
            throw new SecretUnavailableException(reference.Text, _configurationError ?? "vault is not configured");
        }

        var token = ReadToken(reference.Text);
        var address = _options.Address!;
        var path = string.Join('/', reference.VaultPath!.Split('/').Select(Uri.EscapeDataString));
        var url = new Uri(address.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/v1/" + path);

        using var timeoutCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeoutCts.CancelAfter(_timeout);
        try
        {
            using var response = await SendFollowingSameOriginAsync(reference.Text, url, token, timeoutCts.Token);
            var status = (int)response.StatusCode;
            if (status != 200)
            {
                throw new SecretUnavailableException(reference.Text, DescribeStatus(status, address));
            }

            var body = await ReadBoundedAsync(response.Content, timeoutCts.Token);
            return ExtractField(reference, body);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new SecretUnavailableException(reference.Text,
                $"vault at {address.Authority} did not answer within {_timeout.TotalSeconds:0.###} s");
        }
        catch (InvalidDataException)
        {
            throw new SecretUnavailableException(reference.Text, $"vault response is larger than {MaxResponseBytes} bytes");
        }
        catch (HttpRequestException ex)
        {
            var detail = ex.HttpRequestError == HttpRequestError.Unknown ? ex.GetType().Name : ex.HttpRequestError.ToString();
            throw new SecretUnavailableException(reference.Text, $"cannot reach vault at {address.Authority}: {detail}");
        }
    }

    public void Dispose() => _http?.Dispose();

    /// <summary>
    /// Sends the GET with the token; a redirect (301, 302, 303, 307, 308) is followed, at most
    /// <see cref="MaxRedirects"/> times, only when its target has exactly the origin (scheme, host,
    /// port) of the configured address. Any other redirect fails closed without sending the token there.
    /// </summary>
    private async Task<HttpResponseMessage> SendFollowingSameOriginAsync(string reference, Uri url, string token, CancellationToken ct)
    {
        var origin = _options.Address!;
        for (var hop = 0; ; hop++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.TryAddWithoutValidation("X-Vault-Token", token);
            request.Headers.TryAddWithoutValidation("X-Vault-Request", "true");
            if (_options.Namespace is not null)
            {
                request.Headers.TryAddWithoutValidation("X-Vault-Namespace", _options.Namespace);
            }

            var response = await _http!.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            var status = (int)response.StatusCode;
            if (status is not (301 or 302 or 303 or 307 or 308))
            {
                return response;
            }

            var location = response.Headers.Location;
            response.Dispose();
            if (location is null)
            {
                throw new SecretUnavailableException(reference, $"vault answered a redirect ({status}) without a location");
            }

            var target = location.IsAbsoluteUri ? location : new Uri(url, location);
            if (!SameOrigin(target, origin))
            {
                throw new SecretUnavailableException(reference,
                    $"vault at {origin.Authority} redirected ({status}) to another origin ({target.Scheme}://{target.Authority}); "
                    + "the token is never sent to another origin or over plain http: point VAULT_ADDR at the node that serves the request");
            }

            if (hop + 1 > MaxRedirects)
            {
                throw new SecretUnavailableException(reference, $"vault redirected more than {MaxRedirects} times");
            }

            url = target;
        }
    }

    private static bool SameOrigin(Uri a, Uri b) =>
        string.Equals(a.Scheme, b.Scheme, StringComparison.OrdinalIgnoreCase)
        && string.Equals(a.IdnHost, b.IdnHost, StringComparison.OrdinalIgnoreCase)
        && a.Port == b.Port;

    private static string? CheckConfiguration(VaultOptions options)
    {
        if (options.InvalidAddress is not null)
        {
            return $"VAULT_ADDR '{options.InvalidAddress}' is not an absolute URL";
        }

        if (options.Address is null)
        {
            return "vault address is not set (VAULT_ADDR)";
        }

        var scheme = options.Address.Scheme;
        if (scheme != Uri.UriSchemeHttps && scheme != Uri.UriSchemeHttp)
        {
            return $"vault address must be http(s), not '{scheme}'";
        }

        if (scheme == Uri.UriSchemeHttp && !options.Address.IsLoopback && !options.AllowInsecureHttp)
        {
            return "vault address uses plain http toward a non-loopback host; use https (the token would travel in clear)";
        }

        if (options.Token is null && options.TokenFile is null)
        {
            return "no vault token (set VAULT_TOKEN or VAULT_TOKEN_FILE)";
        }

        return null;
    }

    private string ReadToken(string reference)
    {
        if (_options.Token is not null)
        {
            return _options.Token;
        }

        try
        {
            return FileSecretReader.Read(reference, _options.TokenFile!, _maxFileBytes);
        }
        catch (SecretUnavailableException ex)
        {
            throw new SecretUnavailableException(reference, "vault token file: " + ex.Reason);
        }
    }

    private static string DescribeStatus(int status, Uri address) => status switch
    {
        400 => "vault rejected the request (400)",
        401 or 403 => $"vault denied access ({status}): the token is invalid, expired or lacks read permission on this path",
        404 => "not found in vault (404): check the mount, the path and that it is a KV v2 mount (MOUNT/data/PATH)",
        412 => "vault is not yet consistent for this request (412)",
        429 => "vault rate-limited the request (429)",
        473 => "vault performance standby could not serve the request (473)",
        503 => $"vault at {address.Authority} is sealed or unavailable (503)",
        >= 500 => $"vault at {address.Authority} failed ({status})",
        _ => $"unexpected vault response status {status}",
    };

    private static async Task<byte[]> ReadBoundedAsync(HttpContent content, CancellationToken ct)
    {
        await using var stream = await content.ReadAsStreamAsync(ct);
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + read > MaxResponseBytes)
            {
                throw new InvalidDataException("vault response too large");
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }

    private static string ExtractField(SecretReference reference, byte[] body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            if (!document.RootElement.TryGetProperty("data", out var outer) || outer.ValueKind != JsonValueKind.Object
                || !outer.TryGetProperty("data", out var data))
            {
                throw new SecretUnavailableException(reference.Text, "vault response has no data.data (is this a KV v2 mount?)");
            }

            if (data.ValueKind != JsonValueKind.Object)
            {
                throw new SecretUnavailableException(reference.Text, "the secret's current version is deleted or destroyed");
            }

            if (!data.TryGetProperty(reference.Field!, out var field))
            {
                var names = string.Join(", ", data.EnumerateObject().Select(p => p.Name).Take(20));
                throw new SecretUnavailableException(reference.Text,
                    $"field '{reference.Field}' is not in the secret (fields: {(names.Length == 0 ? "none" : names)})");
            }

            var value = field.ValueKind switch
            {
                JsonValueKind.String => field.GetString(),
                JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => field.GetRawText(),
                _ => null,
            };
            if (string.IsNullOrEmpty(value))
            {
                throw new SecretUnavailableException(reference.Text, $"field '{reference.Field}' is empty or not a string");
            }

            if (value.Contains('\n', StringComparison.Ordinal) || value.Contains('\r', StringComparison.Ordinal))
            {
                throw new SecretUnavailableException(reference.Text, $"field '{reference.Field}' holds more than one line; a secret value is one line");
            }

            return value;
        }
        catch (JsonException)
        {
            throw new SecretUnavailableException(reference.Text, "vault response is not valid JSON");
        }
        finally
        {
            Array.Clear(body);
        }
    }

    private bool ValidateServerCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0 || _caCertificates is null)
        {
            return false;
        }

        using var customChain = new X509Chain();
        customChain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        customChain.ChainPolicy.CustomTrustStore.AddRange(_caCertificates);
        customChain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
        {
            foreach (var element in chain.ChainElements.Skip(1))
            {
                customChain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        return customChain.Build(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
    }
}
