using System.IO.Compression;
using System.Text;
using Microsoft.AspNetCore.Http;
using ProxyGuard.Engine.Forwarding;
using ProxyGuard.Engine.Pipeline;
using ProxyGuard.Engine.Pipeline.Stages;
using ProxyGuard.Engine.Runtime;
using ProxyGuard.Engine.Tests.Support;
using ProxyGuard.Inspection;
using ProxyGuard.Inspection.Budgets;

namespace ProxyGuard.Engine.Tests.Budgets;

/// <summary>
/// Lease accounting of the process-wide budgets: whatever path a request takes (completion, refusal, client abort,
/// exception), what it reserved is given back when the request ends, and a refused reservation takes nothing.
/// </summary>
public sealed class ResourceBudgetTests
{
    [Fact]
    public void A_lease_gives_back_everything_once_however_it_grew_and_shrank()
    {
        var budget = new ResourceBudget("test", 100);
        var lease = budget.TryReserve(10)!;
        Assert.True(lease.TryGrow(50));
        lease.Shrink(20);
        Assert.Equal(40, budget.InUse);
        Assert.Equal(40, lease.Amount);
        lease.Dispose();
        lease.Dispose();
        Assert.Equal(0, budget.InUse);
        Assert.False(lease.TryGrow(1));
        Assert.Equal(0, budget.InUse);
    }

    [Fact]
    public void A_refused_reservation_or_growth_takes_nothing_and_is_counted()
    {
        var budget = new ResourceBudget("test", 100);
        using var first = budget.TryReserve(80)!;
        Assert.Null(budget.TryReserve(21));
        Assert.False(first.TryGrow(21));
        Assert.Equal(80, budget.InUse);
        Assert.Equal(2, budget.Refusals);
        Assert.True(first.TryGrow(20));
        Assert.Equal(100, budget.InUse);
    }

    [Fact]
    public void Leases_taken_and_released_from_many_threads_always_come_back_to_zero()
    {
        var budget = new ResourceBudget("test", 1_000);
        Parallel.For(0, 20_000, i =>
        {
            using var lease = budget.TryReserve(i % 7);
            if (lease is null)
            {
                return;
            }

            lease.TryGrow(i % 13);
            lease.Shrink(i % 5);
            Assert.True(budget.InUse <= budget.Capacity);
        });
        Assert.Equal(0, budget.InUse);
        Assert.True(budget.TakePeak() <= 1_000);
    }

    public enum BodyPath
    {
        Completes,
        DeclaredLengthOverBudget,
        ChunkedGrowsPastBudget,
        ClientAborts,
        OverMaxBody,
    }

    /// <summary>
    /// Runs the body stage the way the request delegate does (stages in a try, <see cref="ProxyExchange.ReleaseHeld"/>
    /// in its finally) on each path, and checks what is held during the request and after it.
    /// </summary>
    [Theory]
    [InlineData(BodyPath.Completes)]
    [InlineData(BodyPath.DeclaredLengthOverBudget)]
    [InlineData(BodyPath.ChunkedGrowsPastBudget)]
    [InlineData(BodyPath.ClientAborts)]
    [InlineData(BodyPath.OverMaxBody)]
    public async Task Every_body_path_gives_back_its_reservation_when_the_request_ends(BodyPath path)
    {
        var budget = new ResourceBudget(ProcessBudgets.BodiesName, 256 * 1024);
        var (length, declared, fails) = path switch
        {
            BodyPath.Completes => (100_000, true, false),
            BodyPath.DeclaredLengthOverBudget => (300_000, true, false),
            BodyPath.ChunkedGrowsPastBudget => (300_000, false, false),
            BodyPath.ClientAborts => (100_000, false, true),
            _ => (9 * 1024 * 1024, false, false), // past the default max_body (8 MiB); refused with over-limit
        };
        var bigBudget = path == BodyPath.OverMaxBody ? new ResourceBudget(ProcessBudgets.BodiesName, 64L * 1024 * 1024) : budget;
        var exchange = Exchange(length, declared, fails);
        Denial? denial = null;
        Exception? thrown = null;
        long heldDuring = -1;
        try
        {
            denial = await new BodyStage(bigBudget).RunAsync(exchange);
            heldDuring = bigBudget.InUse;
        }
        catch (IOException e)
        {
            thrown = e;
            heldDuring = bigBudget.InUse;
        }
        finally
        {
            exchange.ReleaseHeld();
        }

        Assert.Equal(0, bigBudget.InUse);
        switch (path)
        {
            case BodyPath.Completes:
                Assert.Null(denial);
                Assert.Equal(length, exchange.View.Body!.Value.Length);
                Assert.Equal(length, heldDuring); // the declared length, reserved before reading
                break;
            case BodyPath.DeclaredLengthOverBudget:
                Assert.Equal("over-capacity", denial?.Reason);
                Assert.Equal(503, denial!.Status);
                Assert.Equal(ProcessBudgets.BodiesName, denial.Rule);
                Assert.Equal(0, heldDuring); // refused before a byte was buffered
                break;
            case BodyPath.ChunkedGrowsPastBudget:
                Assert.Equal("over-capacity", denial?.Reason);
                Assert.True(heldDuring <= budget.Capacity);
                break;
            case BodyPath.ClientAborts:
                Assert.NotNull(thrown);
                Assert.True(heldDuring > 0);
                break;
            case BodyPath.OverMaxBody:
                Assert.Equal("over-limit", denial?.Reason);
                Assert.True(heldDuring > 8 * 1024 * 1024);
                break;
        }
    }

    [Fact]
    public void A_scan_gives_back_its_decompression_output_and_is_refused_when_the_budget_has_no_room()
    {
        // Hex text: compresses about 2:1, well inside the per-step expansion ratio.
        var body = Gzip(Encoding.ASCII.GetBytes(Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(1024 * 1024))));
        var roomy = new ResourceBudget(ProcessBudgets.DecodingName, 64L * 1024 * 1024);
        var scanner = new ContentScanner(new ScannerOptions { DecodeBudget = roomy });
        var result = scanner.ScanBody(body, "gzip", "text/plain", "h");
        Assert.Null(result.Error);
        Assert.Equal(0, roomy.InUse);
        Assert.True(roomy.TakePeak() >= 2 * 1024 * 1024);

        var tight = new ResourceBudget(ProcessBudgets.DecodingName, 1024 * 1024);
        var refused = new ContentScanner(new ScannerOptions { DecodeBudget = tight }).ScanBody(body, "gzip", "text/plain", "h");
        Assert.Equal(ScanErrorKind.CapacityExceeded, refused.ErrorKind);
        Assert.True(refused.Blocked);
        Assert.Equal(0, tight.InUse);
    }

    [Fact]
    public async Task A_full_scan_gate_refuses_after_its_wait_and_a_released_slot_is_reused()
    {
        using var gate = new ScanGate(1, TimeSpan.FromMilliseconds(50));
        var slot = await gate.EnterAsync(CancellationToken.None);
        Assert.NotNull(slot);
        Assert.Null(await gate.EnterAsync(CancellationToken.None));
        Assert.Equal(1, gate.Refusals);
        slot!.Dispose();
        slot.Dispose();
        using var again = await gate.EnterAsync(CancellationToken.None);
        Assert.NotNull(again);
        Assert.Equal(1, gate.InUse);
    }

    private static ProxyExchange Exchange(int length, bool declared, bool fails)
    {
        var context = TestExchanges.Context("POST", "/upload", TestExchanges.Tunnel(), TestSnapshots.BoundHost, "HTTP/2");
        context.Request.Body = new SlowBody(length, fails);
        if (declared)
        {
            context.Request.ContentLength = length;
        }
        else
        {
            context.Request.Headers.TransferEncoding = "chunked";
        }

        var exchange = TestExchanges.Exchange(TestSnapshots.Enforce, context);
        exchange.View = new RequestView("POST", new RequestTarget("https", TestSnapshots.BoundHost, 443, "/upload", ""), [], null);
        return exchange;
    }

    private static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest))
        {
            gzip.Write(data);
        }

        return output.ToArray();
    }

    /// <summary>A request body delivered in 16 KiB reads; with <c>fails</c>, the client goes away half-way.</summary>
    private sealed class SlowBody(int length, bool fails) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (fails && _position >= length / 2)
            {
                throw new IOException("the client reset the stream");
            }

            var n = Math.Min(Math.Min(buffer.Length, 16 * 1024), length - _position);
            buffer[..n].Fill((byte)'a');
            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
