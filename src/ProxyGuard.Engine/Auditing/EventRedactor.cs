using System.Text;
using ProxyGuard.Audit;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Inspection;

namespace ProxyGuard.Engine.Auditing;

/// <summary>
/// Makes sandbox-shaped fields safe to record. A field (a path segment, a query parameter name, the method, the host)
/// that contains a placeholder or a real secret value (raw, percent-encoded or base64) is replaced whole by
/// <c>[redacted]</c>; so is one the content scanner flags when the request had findings there. Query values and
/// user information are never recorded. What remains is sanitised by <see cref="EventText"/>.
/// </summary>
internal sealed class EventRedactor(ProxySnapshot? snapshot)
{
    public const string Redacted = "[redacted]";
    private const int MaxMethod = 32;

    /// <summary>True when the text carries a placeholder or a real value of any configured secret.</summary>
    public bool CarriesSecret(string text)
    {
        if (snapshot is null || text.Length == 0)
        {
            return false;
        }

        var substitutor = snapshot.Substitutor;
        if (!substitutor.IsEmpty && (substitutor.FindPlaceholder(text) is not null || substitutor.FindRealValue(text) is not null))
        {
            return true;
        }

        foreach (var unavailable in snapshot.Unavailable)
        {
            if (text.Contains(unavailable.Placeholder, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    public string? Method(string? method, bool flagged)
    {
        if (method is null)
        {
            return null;
        }

        if (flagged || method.Length > MaxMethod || CarriesSecret(method))
        {
            return Redacted;
        }

        return EventText.Clean(method);
    }

    /// <summary>The host as recorded: only the last two labels when the name itself carries a credential.</summary>
    public string Host(string host, bool carriesCredential)
    {
        if (carriesCredential || CarriesSecret(host))
        {
            var labels = host.Split('.');
            return labels.Length <= 2 ? Redacted : Redacted + "." + labels[^2] + "." + labels[^1];
        }

        return EventText.Clean(host)!;
    }

    /// <summary>
    /// The path and query names as recorded: each path segment and each query name checked on its own, query values
    /// dropped. <paramref name="scanSegments"/> asks for the content scanner too (the request had findings there).
    /// </summary>
    public string Path(string rawPath, string rawQuery, bool scanSegments)
    {
        var builder = new StringBuilder(rawPath.Length + rawQuery.Length + 1);
        var first = true;
        foreach (var segment in rawPath.Split('/'))
        {
            if (!first)
            {
                builder.Append('/');
            }

            first = false;
            builder.Append(segment.Length > 0 && (CarriesSecret(segment) || (scanSegments && Flagged(segment, ScanLocation.Query)))
                ? Redacted
                : segment);
        }

        if (rawQuery.Length > 0)
        {
            builder.Append('?');
            var firstParameter = true;
            foreach (var parameter in rawQuery.Split('&'))
            {
                if (!firstParameter)
                {
                    builder.Append('&');
                }

                firstParameter = false;
                var eq = parameter.IndexOf('=', StringComparison.Ordinal);
                var name = eq < 0 ? parameter : parameter[..eq];
                builder.Append(name.Length > 0 && (CarriesSecret(name) || (scanSegments && Flagged(name, ScanLocation.Query))) ? Redacted : name);
                builder.Append('=');
            }
        }

        return PathRedaction.StripQueryValues(builder.ToString());
    }

    private bool Flagged(string text, ScanLocation location)
    {
        if (snapshot?.Scanner is not { } scanner)
        {
            return false;
        }

        var result = scanner.ScanText(text, location, string.Empty);
        return result.Findings.Count > 0 || result.Blocked;
    }
}
