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
    PodmanConfigCommand.Create(),
    DockerConfigCommand.Create(),
    IdCommand.Create(),
    KeygenCommand.Create(),
};
var parsed = root.Parse(args);
// A bad command line is an error: its messages and "Did you mean" suggestions go to stderr, so stdout carries only results
// (help asked for with --help still goes to stdout).
var configuration = parsed.Errors.Count > 0 ? new InvocationConfiguration { Output = Console.Error } : new InvocationConfiguration();
return await parsed.InvokeAsync(configuration).ConfigureAwait(false);
