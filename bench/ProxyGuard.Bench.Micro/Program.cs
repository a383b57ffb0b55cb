using BenchmarkDotNet.Running;

namespace ProxyGuard.Bench.Micro;

public static class Program
{
    public static void Main(string[] args)
    {
        if (args is ["scan"])
        {
            ScanProbe.Run();
            return;
        }

        if (args is ["loop", var count])
        {
            // For a sampling profiler (perf record with DOTNET_PerfMapEnabled=1): the benign body, scanned COUNT times.
            ScanProbe.Loop(int.Parse(count, System.Globalization.CultureInfo.InvariantCulture));
            return;
        }

        if (args is ["complexity", .. var filter])
        {
            ComplexityProbe.Run(filter.Length > 0 ? filter[0] : null);
            return;
        }

        if (args is ["policy-scale"])
        {
            PolicyScaleProbe.Run();
            return;
        }

        if (args is ["policy-load", .. var loads])
        {
            PolicyScaleProbe.Load(loads.Length > 0 ? int.Parse(loads[0], System.Globalization.CultureInfo.InvariantCulture) : 6);
            return;
        }

        if (args is ["scrub"])
        {
            ScrubProbe.Run();
            return;
        }

        if (args is ["probe"])
        {
            Probe.Run();
            return;
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
