using System.Diagnostics.Metrics;
using System.Globalization;

namespace ProxyGuard.Engine.Telemetry;

/// <summary>
/// Presents the proxy's Prometheus registry as a .NET <see cref="Meter"/> so that the OpenTelemetry SDK can export the
/// same series over OTLP: every family becomes an observable instrument of the same name (counters stay cumulative
/// counters, gauges gauges, a histogram its <c>_count</c> and <c>_sum</c> counters), labels become attributes. The
/// registry is read once per collection (the text exposition, parsed), on the metric reader's thread: nothing of it
/// runs on the request path.
/// </summary>
internal sealed class PrometheusBridge : IDisposable
{
    public const string MeterName = "ProxyGuard";

    private static readonly TimeSpan SnapshotAge = TimeSpan.FromMilliseconds(500);

    private readonly Meter _meter = new(MeterName);
    private readonly Func<string> _scrape;
    private readonly Lock _lock = new();
    private Dictionary<string, List<Sample>>? _samples;
    private long _takenAt;

    /// <param name="scrape">Returns the registry in the Prometheus text format.</param>
    public PrometheusBridge(Func<string> scrape)
    {
        _scrape = scrape;
        foreach (var (family, type) in Types(scrape()))
        {
            switch (type)
            {
                case "counter":
                    _meter.CreateObservableCounter(family, () => Measure(family));
                    break;
                case "histogram":
                    _meter.CreateObservableCounter(family + "_count", () => Measure(family + "_count"));
                    _meter.CreateObservableCounter(family + "_sum", () => Measure(family + "_sum"));
                    break;
                default:
                    _meter.CreateObservableGauge(family, () => Measure(family));
                    break;
            }
        }
    }

    private IEnumerable<Measurement<double>> Measure(string name)
    {
        Dictionary<string, List<Sample>> samples;
        lock (_lock)
        {
            var now = Environment.TickCount64;
            if (_samples is null || now - _takenAt > SnapshotAge.TotalMilliseconds)
            {
                _samples = Parse(_scrape());
                _takenAt = now;
            }

            samples = _samples;
        }

        return samples.TryGetValue(name, out var list)
            ? [.. list.Select(s => new Measurement<double>(s.Value, s.Labels))]
            : [];
    }

    /// <summary>Family name and type from each <c># TYPE</c> line.</summary>
    internal static List<(string Family, string Type)> Types(string text) =>
        [.. text.Split('\n')
            .Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal))
            .Select(l => l["# TYPE ".Length..].Split(' '))
            .Where(p => p.Length == 2)
            .Select(p => (p[0], p[1]))];

    /// <summary>Every sample line (<c>name{label="value",...} value</c>) by sample name.</summary>
    internal static Dictionary<string, List<Sample>> Parse(string text)
    {
        var result = new Dictionary<string, List<Sample>>(StringComparer.Ordinal);
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var nameEnd = line.IndexOfAny(['{', ' ']);
            if (nameEnd <= 0)
            {
                continue;
            }

            var name = line[..nameEnd];
            var labels = new List<KeyValuePair<string, object?>>();
            var i = nameEnd;
            if (line[i] == '{')
            {
                i++;
                while (i < line.Length && line[i] != '}')
                {
                    var eq = line.IndexOf('=', i);
                    if (eq < 0 || eq + 1 >= line.Length || line[eq + 1] != '"')
                    {
                        break;
                    }

                    var key = line[i..eq];
                    var value = new System.Text.StringBuilder();
                    var j = eq + 2;
                    for (; j < line.Length && line[j] != '"'; j++)
                    {
                        if (line[j] == '\\' && j + 1 < line.Length)
                        {
                            j++;
                            value.Append(line[j] == 'n' ? '\n' : line[j]);
                        }
                        else
                        {
                            value.Append(line[j]);
                        }
                    }

                    labels.Add(new KeyValuePair<string, object?>(key, value.ToString()));
                    i = j + 1;
                    if (i < line.Length && line[i] == ',')
                    {
                        i++;
                    }
                }

                i++;
            }

            var valueText = line[Math.Min(i, line.Length)..].Trim().Split(' ')[0];
            if (!TryParseValue(valueText, out var number))
            {
                continue;
            }

            if (!result.TryGetValue(name, out var list))
            {
                result[name] = list = [];
            }

            list.Add(new Sample([.. labels], number));
        }

        return result;
    }

    private static bool TryParseValue(string text, out double value)
    {
        switch (text)
        {
            case "+Inf":
                value = double.PositiveInfinity;
                return true;
            case "-Inf":
                value = double.NegativeInfinity;
                return true;
            default:
                return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value);
        }
    }

    public void Dispose() => _meter.Dispose();

    internal sealed record Sample(KeyValuePair<string, object?>[] Labels, double Value);
}
