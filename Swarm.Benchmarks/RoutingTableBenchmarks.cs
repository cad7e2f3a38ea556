using System.Net;
using BenchmarkDotNet.Attributes;
using Swarm.Core.Content;
using Swarm.Core.Dht;

namespace Swarm.Benchmarks;

/// <summary>
/// The DHT's hottest local operation: <see cref="RoutingTable"/>.Closest(target, 20), answered for every find-node and
/// get-providers request and at every lookup step, on a table filled by observing 5,000 random nodes (it keeps what its
/// k-buckets hold). Baseline: sorting every contact in the table by XOR distance and taking 20.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(BenchConfig))]
public class RoutingTableBenchmarks
{
    private RoutingTable _table = null!;
    private List<Contact> _all = [];
    private Hash256[] _targets = [];
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        var self = Hash256.Random();
        _table = new RoutingTable(self, new DhtOptions { LoopbackAsHosts = true }); // its contacts are all on loopback
        for (int i = 0; i < 5000; i++)
        {
            // Distinct addresses (the per-/24 limit does not apply on loopback).
            var contact = new Contact(Hash256.Random(), new IPEndPoint(IPAddress.Loopback, 1024 + i));
            _table.Observe(contact);
        }
        _all = _table.AllContacts();
        _targets = Enumerable.Range(0, 256).Select(_ => Hash256.Random()).ToArray();
        foreach (var t in _targets)
            if (ClosestTo(t) != SortAllFor(t)) throw new InvalidOperationException($"the table's closest contact differs from the sort's ({_all.Count} contacts)");
    }

    private Hash256 SortAllFor(Hash256 target) => _all.OrderBy(c => c.Id.Xor(target)).Take(20).ToList()[0].Id;
    private Hash256 ClosestTo(Hash256 target) => _table.Closest(target, 20)[0].Id;

    [Benchmark(Baseline = true)]
    public Hash256 SortAll() => SortAllFor(_targets[_next++ & 255]);

    [Benchmark]
    public Hash256 Closest() => ClosestTo(_targets[_next++ & 255]);
}
