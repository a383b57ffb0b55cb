using System.Security.Cryptography.X509Certificates;

namespace ProxyGuard.Engine.Certificates;

internal enum CaExpiryState
{
    Valid,
    ExpiresSoon,
    Expired,
}

/// <summary>The interception CA's expiry at a point in time: expiring soon below <see cref="WarnBefore"/>.</summary>
internal sealed record CaExpiry(DateTimeOffset NotAfter, CaExpiryState State, int DaysLeft)
{
    public static readonly TimeSpan WarnBefore = TimeSpan.FromDays(30);

    public static CaExpiry Of(X509Certificate2 ca, DateTimeOffset now)
    {
        var notAfter = new DateTimeOffset(ca.NotAfter.ToUniversalTime());
        var left = notAfter - now;
        var state = left <= TimeSpan.Zero ? CaExpiryState.Expired : left < WarnBefore ? CaExpiryState.ExpiresSoon : CaExpiryState.Valid;
        return new CaExpiry(notAfter, state, Math.Max(0, (int)Math.Floor(left.TotalDays)));
    }
}
