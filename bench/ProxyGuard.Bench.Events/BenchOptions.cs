using System.Globalization;

namespace ProxyGuard.Bench.Events;

internal sealed record BenchOptions(double Seconds, int Producers, double DenyShare, string? Directory, bool NoDrops, string? Central = null, int Replicas = 3)
{
    public static BenchOptions Parse(string[] args)
    {
        var options = new BenchOptions(5, 4, 0.1, null, false);
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            options = args[i] switch
            {
                "--seconds" => options with { Seconds = double.Parse(Next(), CultureInfo.InvariantCulture) },
                "--producers" => options with { Producers = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--deny-share" => options with { DenyShare = double.Parse(Next(), CultureInfo.InvariantCulture) },
                "--dir" => options with { Directory = Next() },
                "--no-drops" => options with { NoDrops = true },
                "--central" => options with { Central = Next() },
                "--replicas" => options with { Replicas = int.Parse(Next(), CultureInfo.InvariantCulture) },
                _ => throw new ArgumentException(
                    $"unknown option {args[i]}; usage: [--seconds 5] [--producers 4] [--deny-share 0.1] [--dir PATH] [--no-drops] [--central postgres://USER@HOST:PORT/DB [--replicas 3]]"),
            };
        }

        return options;
    }
}
