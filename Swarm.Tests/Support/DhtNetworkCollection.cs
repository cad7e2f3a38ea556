namespace Swarm.Tests.Support;

/// <summary>
/// Heavy tests (the DHT tests with hundreds of nodes or floods, whole swarms, many processes at once) run alone, so they
/// neither starve nor are starved by other tests.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DhtNetworkCollection
{
    public const string Name = "DHT network";
}
