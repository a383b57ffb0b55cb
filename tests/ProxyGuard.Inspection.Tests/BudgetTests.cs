using System.Diagnostics;
using System.Text;
using ProxyGuard.Inspection.Tests.Complexity;

namespace ProxyGuard.Inspection.Tests;

/// <summary>The per-scan budget and cancellation: a scan stops at bounded intervals and says why.</summary>
[Collection(ComplexityCollection.Name)]
public sealed class BudgetTests
{
    private static readonly byte[] _text = ComplexityShapes.Repeat("plain words and %41 escapes, aGVsbG8gd29ybGQgaGVsbG8gd29ybGQg ", 1024 * 1024);

    /// <summary>A clock that moves one second every time it is read.</summary>
    private sealed class SteppingClock(bool moves) : TimeProvider
    {
        private long _now;

        public override long TimestampFrequency => 1000;

        public override long GetTimestamp() => moves ? Interlocked.Add(ref _now, 1000) : _now;
    }

    [Fact]
    public void AScanPastItsBudgetEndsWithScanBudgetExceeded()
    {
        var scanner = new ContentScanner(new ScannerOptions { ScanBudget = TimeSpan.FromSeconds(2), TimeProvider = new SteppingClock(moves: true) });
        var result = scanner.ScanBody(_text, null, "text/plain", "h");
        Assert.Equal(ScanErrorKind.BudgetExceeded, result.ErrorKind);
        Assert.Equal("scan-budget-exceeded", result.Error);
        Assert.Equal(ScanResult.BudgetExceededReason, result.Error);
        Assert.True(result.Blocked);

        foreach (var other in new[]
        {
            scanner.ScanQuery(Encoding.Latin1.GetString(_text), "h"),
            scanner.ScanText(Encoding.Latin1.GetString(_text), ScanLocation.Header, "h"),
        })
        {
            Assert.Equal(ScanErrorKind.BudgetExceeded, other.ErrorKind);
            Assert.True(other.Blocked);
        }

        // The same scan with a clock that stands still completes, and a disabled budget never reads the clock.
        var still = new ContentScanner(new ScannerOptions { TimeProvider = new SteppingClock(moves: false) });
        Assert.Equal(ScanErrorKind.None, still.ScanBody(_text, null, "text/plain", "h").ErrorKind);
        var off = new ContentScanner(new ScannerOptions { ScanBudget = Timeout.InfiniteTimeSpan, TimeProvider = new SteppingClock(moves: true) });
        var clean = off.ScanBody(_text, null, "text/plain", "h");
        Assert.Null(clean.Error);
        Assert.Equal(ScanErrorKind.None, clean.ErrorKind);
        Assert.False(clean.Blocked);
    }

    /// <summary>A clock the test moves by hand.</summary>
    private sealed class ManualClock : TimeProvider
    {
        public long Now { get; set; } = 1;

        public override long TimestampFrequency => 1000;

        public override long GetTimestamp() => Now;
    }

    [Fact]
    public void OneDeadlineIsSharedByEveryFieldOfARequest()
    {
        var clock = new ManualClock();
        var scanner = new ContentScanner(new ScannerOptions { ScanBudget = TimeSpan.FromSeconds(2), TimeProvider = clock });
        var deadline = scanner.StartDeadline();
        Assert.True(deadline.IsSet);
        var field = Encoding.Latin1.GetString(_text[..(64 * 1024)]);
        Assert.Equal(ScanErrorKind.None, scanner.ScanText(field, ScanLocation.Header, "h", deadline, CancellationToken.None).ErrorKind);

        // The request's earlier fields used up its budget: a later field of the same request is past it, although
        // that field alone would be quick (a fresh scan gets a budget of its own).
        clock.Now += 3000;
        foreach (var late in new[]
        {
            scanner.ScanText(field, ScanLocation.Header, "h", deadline, CancellationToken.None),
            scanner.ScanQuery(field, "h", deadline, CancellationToken.None),
            scanner.ScanBody(_text, null, "text/plain", "h", deadline, CancellationToken.None),
        })
        {
            Assert.Equal(ScanErrorKind.BudgetExceeded, late.ErrorKind);
            Assert.True(late.Blocked);
        }

        Assert.Equal(ScanErrorKind.None, scanner.ScanText(field, ScanLocation.Header, "h").ErrorKind);
        Assert.False(default(ScanDeadline).IsSet);
    }

    [Fact]
    public void AnExpensiveCustomRuleIsCappedByTheBudget()
    {
        // issue 20 class 7: a bounded repetition in the thousands costs seconds of CPU per request on a chosen body.
        var scanner = new ContentScanner(new ScannerOptions
        {
            BuiltinDetectorIds = [],
            CustomRules = [new CustomRule("huge", "[a-z0-9]{1,9000}z", ContentAction.Deny, _ => true)],
            ScanBudget = TimeSpan.FromMilliseconds(200),
        });
        var body = Encoding.ASCII.GetBytes(new string('a', 1024 * 1024));
        var watch = Stopwatch.StartNew();
        var result = scanner.ScanBody(body, null, "text/plain", "h");
        watch.Stop();
        Assert.Equal(ScanErrorKind.BudgetExceeded, result.ErrorKind);
        Assert.True(result.Blocked);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"took {watch.Elapsed}");
    }

    [Fact]
    public void ACanceledTokenEndsTheScan()
    {
        var scanner = new ContentScanner(new ScannerOptions());
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var body = scanner.ScanBody(_text, null, "text/plain", "h", cts.Token);
        Assert.Equal(ScanErrorKind.Canceled, body.ErrorKind);
        Assert.Equal(ScanResult.CanceledReason, body.Error);
        Assert.True(body.Blocked);
        Assert.Equal(ScanErrorKind.Canceled, scanner.ScanQuery("a=%41%41%41", "h", cts.Token).ErrorKind);
        Assert.Equal(ScanErrorKind.Canceled, scanner.ScanText("value %41", ScanLocation.Header, "h", cts.Token).ErrorKind);

        // A token that is not canceled changes nothing.
        Assert.Equal(ScanErrorKind.None, scanner.ScanBody(_text, null, "text/plain", "h", CancellationToken.None).ErrorKind);
    }

    [Fact]
    public void CancelingDuringAScanStopsItEarly()
    {
        // 4 MiB of escapes and base64: well over 100 ms of CPU. Canceled after 20 ms, the scan must return
        // long before it would have finished.
        var body = ComplexityShapes.Repeat("%41\\u0041aGVsbG8gd29ybGQgaGVsbG8gd29ybGQg ", 4 * 1024 * 1024);
        var scanner = new ContentScanner(new ScannerOptions { ScanBudget = Timeout.InfiniteTimeSpan, MaxDecodedBytes = long.MaxValue });
        var full = Stopwatch.StartNew();
        var complete = scanner.ScanBody(body, null, "text/plain", "h");
        full.Stop();
        Assert.Equal(ScanErrorKind.None, complete.ErrorKind);

        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(20));
        var watch = Stopwatch.StartNew();
        var result = scanner.ScanBody(body, null, "text/plain", "h", cts.Token);
        watch.Stop();
        Assert.Equal(ScanErrorKind.Canceled, result.ErrorKind);
        Assert.True(watch.Elapsed < full.Elapsed / 2, $"canceled scan took {watch.Elapsed}, the full scan {full.Elapsed}");
    }
}
