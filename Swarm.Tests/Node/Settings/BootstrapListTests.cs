using System.Net;
using Swarm.Node;

namespace Swarm.Tests.Node.Settings;

/// <summary>Bootstrap entries as addresses or names: a name gives every address it has, looked up again at each join.</summary>
public class BootstrapListTests
{
    [Fact]
    public void ANameGivesEveryAddressItHasAndIsLookedUpAgainAtEachResolve()
    {
        var answers = new Dictionary<string, IPAddress[]>
        {
            ["swarm-peers.kube-system.svc.cluster.local"] = [IPAddress.Parse("10.1.0.1"), IPAddress.Parse("10.1.0.2"), IPAddress.Parse("fd00::3")],
        };
        var list = BootstrapList.Parse(["10.0.0.9:7400", "swarm-peers.kube-system.svc.cluster.local:7400", "late.example.internal:7500"],
            name => answers.TryGetValue(name, out var a) ? a : throw new System.Net.Sockets.SocketException(11001));
        Assert.Equal(3, list.Count);

        var first = list.Resolve();
        Assert.Equal(["10.0.0.9:7400", "10.1.0.1:7400", "10.1.0.2:7400", "[fd00::3]:7400"], first.Select(e => e.ToString()));
        Assert.Equal(["late.example.internal"], list.Unresolved); // not an error: left out of this join

        // The record appears later (a DaemonSet's first pods, DNS on its way): the next join has it.
        answers["late.example.internal"] = [IPAddress.Parse("10.2.0.7")];
        Assert.Contains(list.Resolve(), e => e.ToString() == "10.2.0.7:7500");
        Assert.Empty(list.Unresolved);
        Assert.Equal("10.0.0.9:7400, swarm-peers.kube-system.svc.cluster.local:7400, late.example.internal:7500", list.ToString());
    }

    [Theory]
    [InlineData("10.0.0.1")]
    [InlineData("10.0.0.1:99999")]
    [InlineData("bad name:7400")]
    [InlineData("a/b:7400")]
    public void MalformedEntriesAreRefusedWithoutALookup(string text)
    {
        int lookups = 0;
        var e = Assert.Throws<FormatException>(() => BootstrapList.Parse([text], _ => { lookups++; return []; }));
        Assert.Contains(text.Split(':')[0], e.Message, StringComparison.Ordinal);
        Assert.Equal(0, lookups);
    }

    [Fact]
    public void TheSettingTakesNamesWithoutLookingThemUp()
    {
        using var dir = new Swarm.Tests.Support.TempDirectory();
        // A name that cannot resolve here is accepted at load; it would be looked up only at the node's join.
        var c = NodeConfig.Load(dir.Path, new Dictionary<string, string?> { ["bootstrap"] = "swarm-peers.kube-system.svc.cluster.local:7400,10.0.0.2:7400" },
            new System.Collections.Hashtable());
        Assert.Equal(2, c.Bootstrap.Count);
        Assert.Equal("swarm-peers.kube-system.svc.cluster.local:7400, 10.0.0.2:7400", c.Bootstrap.ToString());
    }
}
