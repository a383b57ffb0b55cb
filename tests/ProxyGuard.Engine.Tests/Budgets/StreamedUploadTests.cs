using ProxyGuard.Engine.Budgets;
using ProxyGuard.Policy;

namespace ProxyGuard.Engine.Tests.Budgets;

/// <summary>
/// A streamed upload's pieces are counted against the upload-byte limits only (the request was counted once when it
/// started), all or nothing per piece, and the first piece that does not fit stops it (audit mode: counted anyway).
/// </summary>
public sealed class StreamedUploadTests
{
    private static readonly BudgetSpec s_both = new()
    {
        Name = "both",
        Hosts = [],
        HostMatcher = HostMatcher.Any,
        Clients = [],
        Per = ["client", "host"],
        Limits =
        [
            new BudgetLimit(BudgetQuantity.Requests, 2, TimeSpan.FromHours(1)),
            new BudgetLimit(BudgetQuantity.UploadBytes, 1000, TimeSpan.FromHours(1)),
        ],
    };

    [Fact]
    public async Task Pieces_count_bytes_not_requests_and_the_piece_that_does_not_fit_stops_the_upload_uncounted()
    {
        long now = 1_000_000_000;
        var ledger = new BudgetLedger(1000, () => now);
        Assert.Equal(BudgetOutcome.Admitted, ledger.Charge([(s_both, "k")], 0, streamed: true).Outcome); // the request: 1 of 2
        var upload = new StreamedUpload(ledger, [(s_both, "k")], "c", audit: false);
        for (var i = 0; i < 9; i++)
        {
            Assert.True(await upload.TakeAsync(100)); // nine pieces: still one request counted
        }

        Assert.False(await upload.TakeAsync(200)); // 1100 > 1000: stopped, not counted
        Assert.Equal(900, upload.Counted);
        Assert.Equal("both", upload.Exceeded?.Budget?.Name);
        Assert.False(await upload.TakeAsync(1)); // stays stopped

        // What is left (100 bytes) and the second request are still there for the next one.
        Assert.Equal(BudgetOutcome.Admitted, ledger.Charge([(s_both, "k")], 100).Outcome);
        Assert.Equal(BudgetOutcome.Exceeded, ledger.Charge([(s_both, "k")], 0).Outcome); // requests spent: 2 of 2
    }

    [Fact]
    public async Task In_audit_mode_nothing_is_stopped_and_the_overrun_is_remembered()
    {
        var ledger = new BudgetLedger(1000, () => 1_000_000_000);
        var upload = new StreamedUpload(ledger, [(s_both, "k")], "c", audit: true);
        Assert.True(await upload.TakeAsync(800));
        Assert.True(await upload.TakeAsync(800));
        Assert.Equal(1600, upload.Counted);
        Assert.True(upload.Stopped);
    }
}
