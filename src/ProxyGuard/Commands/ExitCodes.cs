namespace ProxyGuard.Commands;

/// <summary>Exit codes of every command: 0 success, 1 a failed check or runtime error, 2 bad usage.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int Usage = 2;
}
