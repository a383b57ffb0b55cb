using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using ProxyGuard.Inspection;

namespace ProxyGuard.Bench.Micro;

/// <summary>ContentScanner.ScanBody throughput with every built-in detector enabled (plus one known secret).</summary>
[MemoryDiagnoser]
[Config(typeof(ThroughputConfig))]
public class ScannerBenchmarks
{
    private ContentScanner _scanner = null!;
    private byte[] _benign = null!;
    private byte[] _secrets = null!;
    private byte[] _benignGzip = null!;

    [GlobalSetup]
    public void Setup()
    {
        _scanner = Bodies.Scanner();
        _benign = Bodies.BenignJson();
        _secrets = Bodies.WithSecrets();
        _benignGzip = Bodies.Gzip(_benign);
        if (_scanner.ScanBody(_benign, null, "application/json", "api.example.com").Findings.Count != 0)
        {
            throw new InvalidOperationException("benign body has findings");
        }

        if (!_scanner.ScanBody(_secrets, null, "application/json", "api.example.com").Blocked)
        {
            throw new InvalidOperationException("secret body not blocked");
        }
    }

    [Benchmark(Baseline = true, Description = "benign JSON 1 MiB")]
    public ScanResult BenignJson() => _scanner.ScanBody(_benign, null, "application/json", "api.example.com");

    [Benchmark(Description = "JSON 1 MiB with ~128 secrets")]
    public ScanResult JsonWithSecrets() => _scanner.ScanBody(_secrets, null, "application/json", "api.example.com");

    [Benchmark(Description = "benign JSON 1 MiB, gzip")]
    public ScanResult GzipJson() => _scanner.ScanBody(_benignGzip, "gzip", "application/json", "api.example.com");

    private sealed class ThroughputConfig : ManualConfig
    {
        public ThroughputConfig()
        {
            AddColumn(StatisticColumn.Min);
            AddColumn(new ThroughputColumn(fromMin: false));
            AddColumn(new ThroughputColumn(fromMin: true));
        }
    }

    /// <summary>
    /// MB/s of the (decoded) body: its size divided by the mean time, or by the fastest iteration (on a machine shared
    /// with other work the minimum is the least disturbed measurement).
    /// </summary>
    private sealed class ThroughputColumn(bool fromMin) : IColumn
    {
        public string Id => fromMin ? "ThroughputMin" : "Throughput";

        public string ColumnName => fromMin ? "MB/s (min)" : "MB/s";

        public bool AlwaysShow => true;

        public ColumnCategory Category => ColumnCategory.Custom;

        public int PriorityInCategory => 0;

        public bool IsNumeric => true;

        public UnitType UnitType => UnitType.Dimensionless;

        public string Legend => fromMin
            ? "Decoded body megabytes (10^6 bytes) per second on one core, from the fastest iteration"
            : "Decoded body megabytes (10^6 bytes) scanned per second on one core, from the mean";

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            var report = summary[benchmarkCase];
            if (report?.ResultStatistics is null)
            {
                return "-";
            }

            var seconds = (fromMin ? report.ResultStatistics.Min : report.ResultStatistics.Mean) / 1e9;
            var bytes = benchmarkCase.Descriptor.WorkloadMethod.Name == nameof(JsonWithSecrets) ? Bodies.WithSecrets().Length : Bodies.BenignJson().Length;
            return (bytes / seconds / 1e6).ToString("N0", System.Globalization.CultureInfo.InvariantCulture);
        }

        public bool IsAvailable(Summary summary) => true;

        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    }
}
