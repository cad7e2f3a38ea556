using System.CommandLine;
using Swarm.Cli;

var root = new RootCommand("Swarm: peer-to-peer distribution of files and container images, verified piece by piece.")
{
    SeedCommand.Create(),
    GetCommand.Create(),
    NodeCommand.Create(),
    DhtCommand.Create(),
    ControlCommands.Status(),
    ControlCommands.List(),
    ControlCommands.Remove(),
    ControlCommands.Limit(),
    ContainerdConfigCommand.Create(),
    IdCommand.Create(),
};
return await root.Parse(args).InvokeAsync().ConfigureAwait(false);
