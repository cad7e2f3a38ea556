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
// The node's host stops it itself (save tasks, close, exit 0): on SIGTERM, and on Ctrl-C outside systemd (its console or
// systemd lifetime). With System.CommandLine's handler as well, a SIGTERM in the first moments after the start (systemctl
// stop right after READY=1) ended the invocation with 143 before the node had stopped.
if (parsed.CommandResult.Command.Name == "node") configuration.ProcessTerminationTimeout = null;
return await parsed.InvokeAsync(configuration).ConfigureAwait(false);
