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

        if (args is ["probe"])
        {
            Probe.Run();
            return;
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
