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

    /// <summary>
    /// The host as recorded: when the name itself carries a credential, only its last two labels (where the request
    /// was headed), each of them also redacted when it carries a secret or the scanner flags it.
    /// </summary>
    public string Host(string host, bool carriesCredential)
    {
        if (carriesCredential || CarriesSecret(host))
        {
            var labels = host.Split('.');
            if (labels.Length <= 2)
            {
                return Redacted;
            }

            string Keep(string label) => CarriesSecret(label) || Flagged(label, ScanLocation.Host) ? Redacted : EventText.Clean(label)!;
            return Redacted + "." + Keep(labels[^2]) + "." + Keep(labels[^1]);
        }

        return EventText.Clean(host)!;
    }

    /// <summary>
    /// The path and query names as recorded: each path segment and each query name checked on its own, query values
    /// dropped. <paramref name="scanSegments"/> asks for the content scanner too (the request had findings there).
    /// </summary>
    public string Path(string rawPath, string rawQuery, bool scanSegments)
    {
        // Fast path: nothing in the whole target carries a secret and nothing was flagged there, so no field needs
        // looking at one by one (a value found in a field is always found in the whole).
        var carries = CarriesSecret(rawQuery.Length == 0 ? rawPath : rawPath + "?" + rawQuery);
        if (!carries && !scanSegments)
        {
            return PathRedaction.StripQueryValues(rawQuery.Length == 0 ? rawPath : rawPath + "?" + QueryNamesOnly(rawQuery));
        }

        var builder = new StringBuilder(rawPath.Length + rawQuery.Length + 1);
        var segments = rawPath.Split('/');
        for (var i = 0; i < segments.Length; i++)
        {
            var segment = segments[i];
            builder.Append(i > 0 ? "/" : string.Empty)
                .Append(segment.Length > 0 && (CarriesSecret(segment) || (scanSegments && Flagged(segment, ScanLocation.Query))) ? Redacted : segment);
        }

        if (CarriesSecret(builder.ToString()))
        {
            // A value that spans segments (it contains '/'): no single segment shows it, the whole path does.
            builder.Clear().Append('/').Append(Redacted);
        }

        if (rawQuery.Length > 0)
        {
            var names = new List<string?>();
            foreach (var parameter in rawQuery.Split('&'))
            {
                var eq = parameter.IndexOf('=', StringComparison.Ordinal);
                if (eq < 0)
                {
                    names.Add(null); // a parameter without '=' is a value: never recorded
                    continue;
                }

                var name = parameter[..eq];
                var value = parameter[(eq + 1)..];

                // The name carries a secret, or the parameter does while its value does not (a value cut by '=', such
                // as base64 padding, leaves the rest in the name).
                var redact = name.Length > 0
                    && (CarriesSecret(name) || (CarriesSecret(parameter) && !CarriesSecret(value)) || (scanSegments && Flagged(name, ScanLocation.Query)));
                names.Add(redact ? Redacted : name);
            }

            if (CarriesSecret(string.Join('&', names)))
            {
                names = [.. names.Select(n => n is null ? null : Redacted)]; // a value hidden across names
            }

            builder.Append('?').AppendJoin('&', names.Select(n => n is null ? string.Empty : n + "="));
        }

        return PathRedaction.StripQueryValues(builder.ToString());
    }

    /// <summary>The query with every value dropped and every parameter without '=' left out (it is a value).</summary>
    private static string QueryNamesOnly(string rawQuery)
    {
        var builder = new StringBuilder(rawQuery.Length);
        var first = true;
        foreach (var parameter in rawQuery.Split('&'))
        {
            builder.Append(first ? string.Empty : "&");
            first = false;
            var eq = parameter.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                builder.Append(parameter, 0, eq + 1);
            }
        }

        return builder.ToString();
    }

    /// <summary>True when the content scanner flags <paramref name="host"/> (a credential in its labels).</summary>
    public bool FlaggedHost(string host) =>
        host.Length > 0 && snapshot?.ScanHostUnexempted(host) is { } result && (result.Findings.Count > 0 || result.Blocked);

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
