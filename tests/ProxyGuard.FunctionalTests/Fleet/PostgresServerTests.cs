using Npgsql;

namespace ProxyGuard.FunctionalTests.Fleet;

/// <summary>The PostgreSQL fixture the fleet tests build on: a real server on loopback that survives a stop and start.</summary>
public sealed class PostgresServerTests
{
    [RequiresPostgresFact]
    public async Task A_server_started_by_the_test_keeps_its_data_across_a_stop_and_start()
    {
        await using var server = await PostgresServer.StartAsync();
        await using (var connection = new NpgsqlConnection(server.ConnectionString))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand("CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')", connection);
            await create.ExecuteNonQueryAsync();
        }

        var firstPid = server.Pid;
        await server.StopAsync();
        Assert.Null(server.Pid);
        await using (var refused = new NpgsqlConnection(server.ConnectionString))
        {
            await Assert.ThrowsAnyAsync<NpgsqlException>(() => refused.OpenAsync());
        }

        await server.StartAgainAsync();
        Assert.NotEqual(firstPid, server.Pid);
        await using (var connection = new NpgsqlConnection(server.ConnectionString))
        {
            await connection.OpenAsync();
            await using var read = new NpgsqlCommand("SELECT v FROM t", connection);
            Assert.Equal("kept", await read.ExecuteScalarAsync());
        }
    }
}
