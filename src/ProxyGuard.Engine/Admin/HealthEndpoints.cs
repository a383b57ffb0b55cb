using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ProxyGuard.Engine.Certificates;
using ProxyGuard.Engine.Runtime;

namespace ProxyGuard.Engine.Admin;

/// <summary>
/// Orchestrator probes on the admin listener, unauthenticated and with little detail: <c>/livez</c> (the process
/// answers: restart it only when this fails) and <c>/readyz</c> (send it traffic: policy loaded, CA usable, audit
/// store writable, proxy listener serving). <c>/healthz</c> keeps its own meaning (see <see cref="AdminEndpoints"/>).
/// </summary>
internal static class HealthEndpoints
{
    public static void Map(WebApplication app, ProxyServices services)
    {
        // Liveness: answered by the admin listener's own thread pool, independent of the policy, the CA and the store.
        // A failing store or an expired CA must not make the orchestrator restart replicas in a loop: readiness
        // takes them out of the Service instead.
        app.MapGet("/livez", () => Results.Text("ok\n", "text/plain"));

        app.MapGet("/readyz", () =>
        {
            var checks = Readiness(services);
            var ready = checks.All(c => c.Ok);
            var body = new StringBuilder(ready ? "ready\n" : "not-ready\n");
            foreach (var (name, ok, detail) in checks)
            {
                body.Append(name).Append(": ").Append(ok ? "ok" : detail).Append('\n');
            }

            return Results.Text(body.ToString(), "text/plain", statusCode: ready ? 200 : 503);
        });
    }

    /// <summary>Each readiness check in a fixed order: its name, whether it passes, and the reason when not.</summary>
    internal static IReadOnlyList<(string Name, bool Ok, string Detail)> Readiness(ProxyServices services)
    {
        var policyLoaded = TryCurrent(services.Runtime);
        var ca = services.Certificates.CaStatus;
        return
        [
            ("policy", policyLoaded, "not-loaded"),
            ("ca", ca.State != CaExpiryState.Expired, "ca-expired"),
            ("audit", services.Audit.Healthy, "audit-unavailable"),
            ("listener", services.Serving.Listening, services.Serving.Stopping ? "stopping" : "not-listening"),
        ];
    }

    private static bool TryCurrent(PolicyRuntime runtime)
    {
        try
        {
            return runtime.Current is not null;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
