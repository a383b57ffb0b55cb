using ProxyGuard.Policy;

namespace ProxyGuard.Engine.Budgets;

/// <summary>
/// The upload-byte budgets of one request whose size is not known when it starts (a body streamed without a length,
/// or a WebSocket's frames from the client): every piece the client sends is counted before it is passed on, and the
/// first piece that does not fit in a limit stops the transfer (in enforce mode: that piece and everything after it
/// never go upstream, so the upstream receives at most the limit). With a shared store the ledger counts within this
/// replica's lease and asks the store only when the lease runs out (a lease is a slice of the limit, kept topped up
/// in the background), so the flow does not wait on the database per piece.
/// In audit mode nothing is stopped: the bytes are counted anyway and the first overrun is remembered.
/// Reads of one request are sequential (one body, or one WebSocket's client side), so this is not thread-safe.
/// </summary>
internal sealed class StreamedUpload(BudgetLedger ledger, IReadOnlyList<(BudgetSpec Budget, string Key)> budgets, string client, bool audit)
{
    /// <summary>The charge that found a limit spent (the first one), if any.</summary>
    public BudgetCharge? Exceeded { get; private set; }

    /// <summary>Bytes counted so far.</summary>
    public long Counted { get; private set; }

    /// <summary>True when the transfer was (or, in audit mode, would have been) stopped for a spent budget.</summary>
    public bool Stopped => Exceeded is not null;

    /// <summary>
    /// Counts <paramref name="bytes"/> more, before they are forwarded. False: a limit is spent (nothing of them was
    /// counted) and the transfer must stop; never false in audit mode.
    /// </summary>
    public async ValueTask<bool> TakeAsync(long bytes)
    {
        if (bytes <= 0)
        {
            return true;
        }

        if (Exceeded is not null && !audit)
        {
            return false;
        }

        var charge = await ledger.ChargeAsync(budgets, bytes, countAnyway: audit, client: client, bytesOnly: true);
        if (charge.Outcome == BudgetOutcome.Admitted)
        {
            Counted += bytes;
            return true;
        }

        // Exceeded, or (fail closed) a key table full of busy keys.
        Exceeded ??= charge;
        if (audit)
        {
            Counted += charge.Outcome == BudgetOutcome.Exceeded ? bytes : 0;
            return true;
        }

        return false;
    }
}
