using System.Text.Json;
using ProxyGuard.Commands;

namespace ProxyGuard.FunctionalTests.Audit;

/// <summary>
/// The <c>proxyguard events</c> table with values a terminal shows wider or narrower than their length (CJK,
/// combining marks) and values longer than a column's cap: every column still starts in the same terminal cell.
/// </summary>
public sealed class EventTableTests
{
    private static JsonElement Event(long id, string client, string path, string rule)
    {
        var json = JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["id"] = id, ["time"] = "2026-12-03T07:00:00Z", ["decision"] = "allow", ["kind"] = "request", ["client"] = client, ["status"] = 200,
            ["method"] = "GET", ["host"] = "api.example.com", ["port"] = 443, ["path"] = path, ["rule"] = rule, ["reason"] = "rule-allow",
        });
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.Clone();
    }

    /// <summary>Terminal cells of the characters these tests use: CJK 2, combining marks 0, everything else 1.</summary>
    private static int Cells(string text) => text.EnumerateRunes().Sum(r =>
        r.Value is >= 0x4E00 and <= 0x9FFF or >= 0xAC00 and <= 0xD7A3 ? 2 : r.Value is >= 0x0300 and <= 0x036F ? 0 : 1);

    /// <summary>The terminal cell at which <paramref name="line"/>'s character at <paramref name="index"/> is shown.</summary>
    private static int CellAt(string line, int index) => Cells(line[..index]);

    [Fact]
    public void Wide_combining_and_long_values_keep_every_column_aligned()
    {
        var table = new EventsCommand.EventTable(colour: false);
        var output = table.Render(
        [
            Event(1, "agent", "/short", "r-one"),
            Event(22, "agent", "/数据/仓库/文件", "r-two"),
            Event(333, "agent", "/cafe\u0301/e\u0301te\u0301/a\u0308", "r-three"),
            Event(4444, "agent", "/" + new string('x', 150) + "/end", "r-four"),
            Event(55555, "agent", "/" + string.Concat(Enumerable.Repeat("数据", 40)) + "/tail", "r-five"),
        ]);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(6, lines.Length);
        var header = lines[0];
        foreach (var column in new[] { "DECISION", "TARGET", "RULE", "REASON" })
        {
            var at = header.IndexOf(column, StringComparison.Ordinal);
            foreach (var row in lines.Skip(1))
            {
                var value = column switch { "DECISION" => "allow", "TARGET" => "GET api.example.com", "RULE" => " r-", _ => "rule-allow" };
                var index = row.IndexOf(value, StringComparison.Ordinal) + (column == "RULE" ? 1 : 0);
                Assert.True(CellAt(row, index) == at, $"{column} at cell {at}, but at cell {CellAt(row, index)} in:\n{header}\n{row}");
            }
        }

        // A long value is shortened in the middle (start and end kept), never wider than the cap.
        var longRow = Assert.Single(lines, l => l.Contains("r-four", StringComparison.Ordinal));
        Assert.Contains("GET api.example.com:443/xxx", longRow, StringComparison.Ordinal);
        Assert.Contains("…", longRow, StringComparison.Ordinal);
        Assert.Contains("xx/end", longRow, StringComparison.Ordinal);
        var wideRow = Assert.Single(lines, l => l.Contains("r-five", StringComparison.Ordinal));
        Assert.Contains("数据/tail", wideRow, StringComparison.Ordinal);
        var wideTarget = wideRow[wideRow.IndexOf("GET", StringComparison.Ordinal)..].Split("  ")[0];
        Assert.True(Cells(wideTarget) <= EventsCommand.EventTable.MaxAlignedWidth, $"{Cells(wideTarget)} cells: {wideTarget}");
    }

    [Theory]
    [InlineData("denied", "deny")]
    [InlineData("blocked", "deny")]
    [InlineData("Allow", "allow")]
    [InlineData("alow", "allow")]
    [InlineData("audit_deny", "audit-deny")]
    [InlineData("allowed", "allow")]
    [InlineData("zzz", null)]
    public void Decision_typos_get_a_did_you_mean(string typed, string? expected) =>
        Assert.Equal(expected, OptionChecks.DidYouMean(typed, ["allow", "deny", "audit-deny"],
            new Dictionary<string, string> { ["denied"] = "deny", ["blocked"] = "deny" }));
}
