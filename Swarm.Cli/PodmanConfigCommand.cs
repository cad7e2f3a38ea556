using System.CommandLine;
using System.Text;
using Swarm.Core.Sources;

namespace Swarm.Cli;

/// <summary>
/// <c>swarm podman-config</c>: the containers-registries.conf(5) drop-in that sends pulls of one registry through this
/// host's node. Podman, buildah, skopeo and CRI-O all read it. They name no registry in their requests to a mirror (no
/// <c>?ns=</c> as containerd sends), so the node forwards them to its one <c>--upstream</c>: the drop-in is for exactly
/// that registry.
/// </summary>
internal static class PodmanConfigCommand
{
    public const string Header = "# Written by 'swarm podman-config'";

    public static Command Create()
    {
        var registries = new Option<string[]>("--registry")
        {
            Description = "The registry whose pulls go through the node: the node's --upstream (docker.io unless set). Exactly one: podman and CRI-O do not tell the mirror which registry they mean.",
            Required = true,
        };
        var mirror = new Option<string>("--mirror")
        {
            Description = "The node's registry mirror URL. Default http://127.0.0.1:7401 (the node's default --mirror).",
            DefaultValueFactory = _ => "http://127.0.0.1:7401",
        };
        var write = new Option<string?>("--write")
        {
            Description = "Write the drop-in to FILE instead of printing it, e.g. /etc/containers/registries.conf.d/50-swarm.conf.",
        };
        var command = new Command("podman-config", "Print (or write with --write) the registries.conf drop-in that points podman, buildah, skopeo and CRI-O at this host's Swarm node for pulls of the node's upstream registry.")
        {
            registries, mirror, write,
        };
        command.SetAction(parse =>
        {
            return ConfigFiles.Run("podman-config", () =>
            {
                var names = parse.GetValue(registries) ?? [];
                if (names.Length != 1)
                    throw new UsageException("one --registry only: podman and CRI-O send no registry name to a mirror, so the node forwards their pulls to its one --upstream. " +
                        "Give that registry; for another registry, run another node (its own --mirror port and --upstream) and a drop-in for it");
                string registry = ContainerdConfigCommand.CheckedName(names[0]);
                var mirrorUrl = ContainerdConfigCommand.ParseHttpUrl(parse.GetValue(mirror)!, "--mirror");
                string text = DropIn(registry, mirrorUrl);
                string? file = parse.GetValue(write);
                if (file == null)
                {
                    Console.Out.Write(text);
                }
                else
                {
                    string path = Path.GetFullPath(file);
                    if (File.Exists(path) && !ConfigFiles.FirstLine(path).StartsWith(Header, StringComparison.Ordinal))
                        throw new UsageException($"{path} exists and 'swarm podman-config' did not write it: left alone (remove it or choose another file)");
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    ConfigFiles.WriteAtomically(path, text);
                    Console.Error.WriteLine($"swarm: wrote {path}");
                }
                Console.Error.WriteLine($"swarm: pulls of {registry} go through the node only if its --upstream is {registry}: the node sends requests that name no registry there");
                return ExitCodes.Ok;
            });
        });
        return command;
    }

    /// <summary>A <c>[[registry]]</c> for REGISTRY with the node as its one <c>[[registry.mirror]]</c> (insecure when it is plain HTTP).</summary>
    public static string DropIn(string registry, Uri mirror)
    {
        var server = ContainerdConfigCommand.DefaultServer(registry);
        string host = Oci.CanonicalRegistry(registry) == "registry-1.docker.io" ? "docker.io" : registry;
        var b = new StringBuilder();
        b.Append(Header).Append(": pulls of ").Append(registry).Append(" go through the local Swarm node's registry mirror,\n");
        b.Append("# which serves blobs from the swarm and resolves tags at its --upstream (which must be ").Append(registry).Append(").\n");
        b.Append("# When the node does not answer, the pull goes to the registry itself.\n");
        b.Append("[[registry]]\n");
        b.Append("prefix = \"").Append(host).Append("\"\n");
        b.Append("location = \"").Append(host).Append("\"\n");
        if (server.Scheme == Uri.UriSchemeHttp) b.Append("insecure = true\n");
        b.Append("\n[[registry.mirror]]\n");
        b.Append("location = \"").Append(mirror.Authority).Append(mirror.AbsolutePath.TrimEnd('/')).Append("\"\n");
        if (mirror.Scheme == Uri.UriSchemeHttp) b.Append("insecure = true\n");
        return b.ToString();
    }
}
