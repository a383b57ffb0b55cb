using Prometheus;

namespace ProxyGuard.Engine.Runtime;

/// <summary>
/// Prometheus metrics. Labels are bounded: decisions, policy rule names, detector ids, secret names
/// and error kinds come from the policy or the code, never from raw hosts or paths.
/// </summary>
internal sealed class ProxyMetrics
{
    private readonly Lock _policyInfoLock = new();

    public ProxyMetrics()
    {
        Registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(Registry);
        Requests = factory.CreateCounter("proxyguard_requests_total", "HTTP requests decided, by decision, rule and reason.", "decision", "rule", "reason");
        Connects = factory.CreateCounter("proxyguard_connects_total", "CONNECT requests decided, by decision, rule and reason.", "decision", "rule", "reason");
        Findings = factory.CreateCounter("proxyguard_content_findings_total", "Content findings, by detector and action.", "detector", "action");
        SecretInjections = factory.CreateCounter("proxyguard_secret_injections_total", "Secret substitutions, by secret name.", "secret");
        BudgetCutoffs = factory.CreateCounter("proxyguard_budget_cutoffs_total",
            "Streamed uploads and WebSockets cut off mid-transfer because a policy budget's upload bytes were spent, by budget and kind (upload, websocket).", "budget", "kind");
        UpstreamErrors = factory.CreateCounter("proxyguard_upstream_errors_total", "Upstream failures, by kind.", "kind");
        RequestDuration = factory.CreateHistogram("proxyguard_request_duration_seconds", "Time from request head to response end.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 16) });
        ActiveConnections = factory.CreateGauge("proxyguard_active_connections", "Open client connections on the proxy listener.");
        ActiveTunnels = factory.CreateGauge("proxyguard_active_tunnels", "Open CONNECT tunnels (intercepted and pass-through).");
        CertificatesMinted = factory.CreateCounter("proxyguard_certificates_minted_total", "Leaf certificates minted since start.");
        CertificateCacheHits = factory.CreateCounter("proxyguard_certificate_cache_hits_total", "TLS handshakes served from the leaf certificate cache.");
        CertificateCacheEntries = factory.CreateGauge("proxyguard_certificate_cache_entries", "Leaf certificates in the cache.");
        PolicyReloads = factory.CreateCounter("proxyguard_policy_reloads_total", "Policy loads, by result.", "result");
        PolicyInfo = factory.CreateGauge("proxyguard_policy_info", "1 for the SHA-256 of the policy file in effect (compare it across replicas).", "sha256");
        EventQueueDepth = factory.CreateGauge("proxyguard_event_queue_depth", "Audit events waiting to be committed.");
        EventsDropped = factory.CreateCounter("proxyguard_events_dropped_total", "Allow events dropped because the queue was full or the store failing (deny events are never dropped).");
        EventsWritten = factory.CreateCounter("proxyguard_events_written_total", "Audit events committed since start.");
        CaNotAfter = factory.CreateGauge("proxyguard_ca_not_after_seconds", "Expiry of the interception CA certificate (Unix time, seconds); alert well before it (e.g. 30 days).");
        ShippingUp = factory.CreateGauge("proxyguard_events_shipping_up", "With a central event store: 1 while the last shipping round reached PostgreSQL, 0 while it is unreachable (the proxy keeps serving from its outbox).");
        ShippingBacklog = factory.CreateGauge("proxyguard_events_shipping_backlog", "With a central event store: committed events not yet shipped (the outbox; past its bound requests fail closed).");
        ShippingLag = factory.CreateGauge("proxyguard_events_shipping_lag_seconds", "With a central event store: age of the oldest event not yet shipped (0 when none wait).");
        EventsShipped = factory.CreateCounter("proxyguard_events_shipped_total", "With a central event store: events shipped to it since start.");
        AuditStoreHealthy = factory.CreateGauge("proxyguard_audit_store_healthy", "1 while the audit store accepts events, 0 while it fails (requests then fail closed with 503).");

        // The process's own cost, for capacity planning and for benchmarks that divide by requests served: bytes
        // allocated (load-independent, unlike time) and CPU time.
        var allocated = factory.CreateCounter("proxyguard_process_allocated_bytes_total", "Bytes the process allocated on the managed heap since start.");
        var heap = factory.CreateGauge("proxyguard_process_heap_bytes", "Managed heap size after the last garbage collection.");
        var cpu = factory.CreateCounter("proxyguard_process_cpu_seconds_total", "CPU time (user and system) the process used since start.");
        Registry.AddBeforeCollectCallback(() =>
        {
            allocated.IncTo(GC.GetTotalAllocatedBytes(precise: false));
            heap.Set(GC.GetGCMemoryInfo().HeapSizeBytes);
            cpu.IncTo(Environment.CpuUsage.TotalTime.TotalSeconds);
        });
    }

    public CollectorRegistry Registry { get; }

    /// <summary>Exports the OTLP exporter's counts (the families exist, at zero, when the export is off).</summary>
    public void TrackOtlp(Telemetry.OtlpExport? export)
    {
        var factory = Metrics.WithCustomRegistry(Registry);
        var exported = factory.CreateCounter("proxyguard_otlp_events_exported_total", "Audit events the OTLP collector accepted (0 while OTLP export is off).");
        var dropped = factory.CreateCounter("proxyguard_otlp_events_dropped_total", "Audit events not exported over OTLP: queue-full (the exporter fell behind) or export-failed (the collector refused or was unreachable).", "reason");
        dropped.WithLabels("queue-full");
        dropped.WithLabels("export-failed");
        if (export is null)
        {
            return;
        }

        Registry.AddBeforeCollectCallback(() =>
        {
            exported.IncTo(export.Exported);
            dropped.WithLabels("queue-full").IncTo(export.DroppedQueueFull);
            dropped.WithLabels("export-failed").IncTo(export.DroppedExportFailed);
        });
    }

    /// <summary>Exports the process-wide budgets: capacity, what is held now, and refusals, by budget name.</summary>
    public void TrackBudgets(ProcessBudgets budgets)
    {
        var factory = Metrics.WithCustomRegistry(Registry);
        var capacity = factory.CreateGauge("proxyguard_budget_capacity", "Capacity of each process-wide budget (bytes, or scans for concurrent-scans).", "budget");
        var inUse = factory.CreateGauge("proxyguard_budget_in_use", "What each process-wide budget holds now (bytes, or scans for concurrent-scans).", "budget");
        var refused = factory.CreateCounter("proxyguard_budget_refusals_total", "Reservations each process-wide budget refused since start (those requests were refused with over-capacity).", "budget");
        Registry.AddBeforeCollectCallback(() =>
        {
            foreach (var budget in new[] { budgets.Bodies, budgets.Decoding, budgets.WebSockets })
            {
                capacity.WithLabels(budget.Name).Set(budget.Capacity);
                inUse.WithLabels(budget.Name).Set(budget.InUse);
                refused.WithLabels(budget.Name).IncTo(budget.Refusals);
            }

            capacity.WithLabels(ProcessBudgets.ScansName).Set(budgets.Scans.Capacity);
            inUse.WithLabels(ProcessBudgets.ScansName).Set(budgets.Scans.InUse);
            refused.WithLabels(ProcessBudgets.ScansName).IncTo(budgets.Scans.Refusals);
        });
    }

    /// <summary>Exports the policy budgets' ledger (keys tracked, refusals for lack of room) and the shared store's state.</summary>
    public void TrackUsageBudgets(Budgets.BudgetLedger ledger, Budgets.BudgetSync? sync)
    {
        var factory = Metrics.WithCustomRegistry(Registry);
        var keys = factory.CreateGauge("proxyguard_budget_keys", "Policy budget keys tracked in memory (bounded by PROXYGUARD_LIMIT_MAX_BUDGET_KEYS).");
        var full = factory.CreateCounter("proxyguard_budget_keys_full_total", "Requests refused (over-capacity) because the budget key table was full of busy keys.");
        var healthy = factory.CreateGauge("proxyguard_budget_store_healthy", "1 while the shared budget store is reachable (or none is configured), 0 while each replica falls back to its local share.");
        var replicas = factory.CreateGauge("proxyguard_budget_store_replicas", "Replicas seen in the shared budget store's last heartbeat.");
        Registry.AddBeforeCollectCallback(() =>
        {
            keys.Set(ledger.Count);
            full.IncTo(ledger.FullRefusals);
            healthy.Set(sync is null || ledger.LocalShareDivisor() == 0 ? 1 : 0);
            replicas.Set(sync?.Replicas ?? 1);
        });
    }

    public Counter Requests { get; }

    public Counter BudgetCutoffs { get; }

    /// <summary>Counts one request decision (the labels carry the same verdict, rule and reason as the header and event).</summary>
    public void CountRequest(Policy.Decisions.Decision decision) =>
        Requests.WithLabels(decision.VerdictName, RuleLabel(decision.Rule), decision.Reason.Name).Inc();

    /// <summary>Counts one CONNECT decision.</summary>
    public void CountConnect(Policy.Decisions.Decision decision) =>
        Connects.WithLabels(decision.VerdictName, RuleLabel(decision.Rule), decision.Reason.Name).Inc();

    public Counter Connects { get; }

    public Counter Findings { get; }

    public Counter SecretInjections { get; }

    public Counter UpstreamErrors { get; }

    public Histogram RequestDuration { get; }

    public Gauge ActiveConnections { get; }

    public Gauge ActiveTunnels { get; }

    public Counter CertificatesMinted { get; }

    public Counter CertificateCacheHits { get; }

    public Gauge CertificateCacheEntries { get; }

    public Counter PolicyReloads { get; }

    public Gauge PolicyInfo { get; }

    /// <summary>Makes <paramref name="sha256"/> the one series of <c>proxyguard_policy_info</c> (the previous one is removed).</summary>
    public void SetPolicy(string sha256)
    {
        lock (_policyInfoLock)
        {
            foreach (var labels in PolicyInfo.GetAllLabelValues().ToList())
            {
                if (!string.Equals(labels[0], sha256, StringComparison.Ordinal))
                {
                    PolicyInfo.RemoveLabelled(labels);
                }
            }

            PolicyInfo.WithLabels(sha256).Set(1);
        }
    }

    public Gauge EventQueueDepth { get; }

    public Counter EventsDropped { get; }

    public Counter EventsWritten { get; }

    public Gauge AuditStoreHealthy { get; }

    public Gauge ShippingUp { get; }

    public Gauge ShippingBacklog { get; }

    public Gauge ShippingLag { get; }

    public Counter EventsShipped { get; }

    public Gauge CaNotAfter { get; }

    /// <summary>A rule label: grant ids (<c>grant:ID</c>) are per grant, so every grant counts under the one label <c>grant</c>.</summary>
    internal static string RuleLabel(string rule) =>
        rule.StartsWith(Policy.Grants.Grant.RulePrefix, StringComparison.Ordinal) ? "grant" : rule;
}
