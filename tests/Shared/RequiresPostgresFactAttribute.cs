namespace ProxyGuard.Tests.Shared;

/// <summary>
/// A fact that needs a PostgreSQL server (<see cref="PostgresServer"/>): skipped with the reason when PostgreSQL is not
/// installed here, and a failure instead when <c>PG_REQUIRE_TOOLS=1</c> (CI installs Debian's postgresql).
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class RequiresPostgresFactAttribute : FactAttribute
{
    public RequiresPostgresFactAttribute()
    {
        if (!PostgresServer.Available && Environment.GetEnvironmentVariable("PG_REQUIRE_TOOLS") != "1")
        {
            Skip = "PostgreSQL is not installed here (Debian package postgresql; .ci/run installs it; PG_REQUIRE_TOOLS=1 makes this a failure)";
        }
    }
}
