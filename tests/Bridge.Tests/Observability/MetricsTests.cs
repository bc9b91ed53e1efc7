using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text.Json;
using Bridge.Observability;
using Bridge.Tests.Support;

namespace Bridge.Tests.Observability;

/// <summary>The "Bridge" meter (what dotnet-counters shows) and JSON logs.</summary>
public class MetricsTests
{
    [Fact]
    public async Task Transactions_recipients_refusals_latency_and_sessions_are_counted()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:MaxMessageBytes=3000");
        var factory = s.Bridge.Service<IMeterFactory>();
        var measurements = new ConcurrentQueue<(string Name, double Value, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == BridgeMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, factory))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => measurements.Enqueue((i.Name, v, Tags(tags))));
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => measurements.Enqueue((i.Name, v, Tags(tags))));
        listener.Start();

        await Swaks.SendAsync(s.Port, $"alice@{SpoolScenario.Domain}");
        await Swaks.SendAsync(s.Port, $"nosuchuser@{SpoolScenario.Domain}");
        await Swaks.SendAsync(s.Port, $"alice@{SpoolScenario.Domain}", body: new string('x', 5000));
        await Eventually.WaitAsync(() => Sum(measurements, "bridge.sessions.open") == 0 && measurements.Count(m => m.Name == "bridge.sessions.open") == 6, 10);

        Assert.Equal(1, Sum(measurements, "bridge.transactions", ("outcome", "accepted")));
        Assert.Equal(1, Sum(measurements, "bridge.transactions", ("outcome", "rejected"), ("status", "5.3.4")));
        Assert.Equal(1, Sum(measurements, "bridge.recipients", ("outcome", "sent"), ("mode", "Spool")));
        Assert.Equal(1, Sum(measurements, "bridge.recipients.refused", ("status", "5.1.1")));
        Assert.Equal(2, measurements.Count(m => m.Name == "bridge.delivery.duration"));
    }

    [Fact]
    public async Task Bridge_Logging_Json_writes_one_json_object_per_line()
    {
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var port = FreePort.Next();
        await using var bridge = await BridgeProcess.StartAsync(dir, null, $"--Bridge:Listen:Port={port}", "--Bridge:Logging:Json=true",
            $"--Bridge:Spool:Directory={spool.Path}", $"--Bridge:Spool:JournalDirectory={dir["journal"]}");

        var line = bridge.Lines.First(l => l.Contains("Bridge listening on", StringComparison.Ordinal));
        using var json = JsonDocument.Parse(line);
        Assert.Equal("Information", json.RootElement.GetProperty("LogLevel").GetString());
        Assert.Contains($"127.0.0.1:{port}", json.RootElement.GetProperty("Message").GetString(), StringComparison.Ordinal);
    }

    private static Dictionary<string, object?> Tags(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var result = new Dictionary<string, object?>();
        foreach (var tag in tags)
        {
            result[tag.Key] = tag.Value;
        }
        return result;
    }

    private static double Sum(IEnumerable<(string Name, double Value, Dictionary<string, object?> Tags)> measurements, string name,
        params (string Key, string Value)[] tags) =>
        measurements.Where(m => m.Name == name && tags.All(t => Equals(m.Tags.GetValueOrDefault(t.Key), t.Value))).Sum(m => m.Value);
}

/// <summary>The optional Prometheus endpoint (Bridge:Metrics:PrometheusPort), on loopback only.</summary>
/// <remarks>Bridge runs as its own process here: OpenTelemetry listens to every meter named "Bridge" in a
/// process, so an in-process Bridge would also export the counts of other tests running in parallel.</remarks>
public class PrometheusEndpointTests
{
    [Fact]
    public async Task The_endpoint_serves_bridge_metrics_on_loopback_when_a_port_is_set()
    {
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var port = FreePort.Next();
        var metricsPort = FreePort.Next();
        await File.WriteAllTextAsync(dir["appsettings.json"], $$"""
            { "Bridge": { "Listen": { "Port": {{port}} }, "LocalDomains": [ "{{SpoolScenario.Domain}}" ],
              "Spool": { "Directory": "{{spool.Path}}", "JournalDirectory": "{{dir["journal"]}}" }, "Metrics": { "PrometheusPort": {{metricsPort}} } } }
            """);
        await using var bridge = await BridgeProcess.StartAsync(dir, null);
        Assert.StartsWith("250 ", (await Swaks.SendAsync(port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}")).FinalReply, StringComparison.Ordinal);

        using var http = new HttpClient();
        string text = "";
        await Eventually.WaitAsync(async () =>
        {
            text = await http.GetStringAsync(new Uri($"http://127.0.0.1:{metricsPort}/metrics"));
            return text.Contains("bridge_transactions", StringComparison.Ordinal);
        }, 15);

        Assert.Matches(@"bridge_transactions(_total)?\{[^}]*outcome=""accepted""[^}]*\} 1( |\n)", text);
        Assert.Contains("bridge_delivery_duration", text, StringComparison.Ordinal);
    }
}
