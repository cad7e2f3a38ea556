using System.CommandLine;
using System.Net;
using System.Text;
using Swarm.Core.Sources;

namespace Swarm.Cli;

/// <summary>
/// <c>swarm containerd-config</c>: the hosts.toml that sends containerd's pulls of a registry through this host's node
/// (its registry mirror), with a short dial timeout so a stopped node costs a pull almost nothing: containerd then goes
/// to the registry itself.
/// </summary>
internal static class ContainerdConfigCommand
{
    public static Command Create()
    {
        var registries = new Option<string[]>("--registry")
        {
            Description = "Registry whose pulls go through the node, as containerd names it: docker.io, ghcr.io, registry.example.com:5000 (repeatable).",
            Required = true,
            AllowMultipleArgumentsPerToken = false,
        };
        var mirror = new Option<string>("--mirror")
        {
            Description = "The node's registry mirror URL. Default http://127.0.0.1:7401 (the node's default --mirror).",
            DefaultValueFactory = _ => "http://127.0.0.1:7401",
        };
        var server = new Option<string?>("--server") { Description = "The registry's own URL, when it is not https://REGISTRY (http:// for loopback registries)." };
        var dialTimeout = new Option<string>("--dial-timeout") { Description = "How long containerd tries to reach the node before going to the registry. Default 200ms.", DefaultValueFactory = _ => "200ms" };
        var write = new Option<string?>("--write")
        {
            Description = "Write DIR/<registry>/hosts.toml instead of printing it (containerd's config_path, usually /etc/containerd/certs.d).",
        };
        var remove = new Option<bool>("--remove")
        {
            Description = "With --write: delete the hosts.toml files this command wrote for the registries (files without its header are left alone), e.g. on uninstall.",
        };
        var command = new Command("containerd-config", "Print (or write with --write) the hosts.toml that points containerd at this host's Swarm node for pulls of a registry.")
        {
            registries, mirror, server, dialTimeout, write, remove,
        };
        command.SetAction(parse =>
        {
            return ConfigFiles.Run("containerd-config", () =>
            {
                var mirrorUrl = ParseHttpUrl(parse.GetValue(mirror)!, "--mirror");
                string timeout = parse.GetValue(dialTimeout)!;
                if (!System.Text.RegularExpressions.Regex.IsMatch(timeout, @"^\d+(\.\d+)?(ms|s)$"))
                    throw new UsageException($"--dial-timeout '{timeout}' is not a duration such as 200ms or 1s");
                var names = parse.GetValue(registries) ?? [];
                string? serverText = parse.GetValue(server);
                if (serverText != null && names.Length != 1) throw new UsageException("--server needs exactly one --registry");
                string? dir = parse.GetValue(write);
                if (parse.GetValue(remove))
                {
                    if (dir == null) throw new UsageException("--remove needs --write DIR (the directory the files were written to)");
                    foreach (var name in names) Remove(Path.Combine(Path.GetFullPath(dir), CheckedName(name)));
                    return ExitCodes.Ok;
                }
                foreach (var name in names)
                {
                    CheckedName(name);
                    var serverUrl = serverText != null ? ParseHttpUrl(serverText, "--server") : DefaultServer(name);
                    string toml = HostsToml(name, serverUrl, mirrorUrl, timeout);
                    if (dir == null)
                    {
                        if (names.Length > 1) Console.Out.WriteLine($"# {name}/hosts.toml");
                        Console.Out.Write(toml);
                        continue;
                    }
                    string target = Path.Combine(Path.GetFullPath(dir), name);
                    Directory.CreateDirectory(target);
                    string file = Path.Combine(target, "hosts.toml");
                    ConfigFiles.WriteAtomically(file, toml);
                    Console.Error.WriteLine($"swarm: wrote {file}");
                }
                if (dir != null)
                    Console.Error.WriteLine($"swarm: containerd reads it when its CRI registry config_path is {Path.GetFullPath(dir)} (or with 'ctr image pull --hosts-dir {Path.GetFullPath(dir)}'); no restart is needed");
                return ExitCodes.Ok;
            });
        });
        return command;
    }

    internal static string CheckedName(string name) =>
        name.Length == 0 || name.Contains('/', StringComparison.Ordinal) || name.Contains('\\', StringComparison.Ordinal) || name is "." or ".." || name.Any(char.IsWhiteSpace)
            ? throw new UsageException($"--registry '{name}' is not a registry host (e.g. docker.io or registry.example.com:5000)")
            : name;

    /// <summary>Deletes DIR/hosts.toml when this command wrote it (its first line is our header), then DIR if it is empty.</summary>
    private static void Remove(string directory)
    {
        string file = Path.Combine(directory, "hosts.toml");
        if (!File.Exists(file))
        {
            Console.Error.WriteLine($"swarm: {file} is not there: nothing to remove");
            return;
        }
        if (!ConfigFiles.FirstLine(file).StartsWith(Header, StringComparison.Ordinal))
        {
            Console.Error.WriteLine($"swarm: left {file} alone: 'swarm containerd-config' did not write it");
            return;
        }
        File.Delete(file);
        Console.Error.WriteLine($"swarm: removed {file}");
        if (!Directory.EnumerateFileSystemEntries(directory).Any()) Directory.Delete(directory);
    }

    private const string Header = "# Written by 'swarm containerd-config'";

    internal static Uri ParseHttpUrl(string text, string option) =>
        Uri.TryCreate(text, UriKind.Absolute, out var u) && (u.Scheme == Uri.UriSchemeHttp || u.Scheme == Uri.UriSchemeHttps)
            ? u : throw new UsageException($"{option} '{text}' is not an http(s) URL");

    /// <summary>https://REGISTRY (docker.io's API lives at registry-1.docker.io); plain http for loopback registries.</summary>
    public static Uri DefaultServer(string registry)
    {
        string host = Oci.CanonicalRegistry(registry);
        string bare = host.StartsWith('[') ? host[1..host.IndexOf(']', StringComparison.Ordinal)] : host.Split(':')[0];
        bool loopback = bare == "localhost" || (IPAddress.TryParse(bare, out var ip) && IPAddress.IsLoopback(ip));
        return new Uri((loopback ? "http://" : "https://") + host);
    }

    public static string HostsToml(string registry, Uri server, Uri mirror, string dialTimeout)
    {
        var b = new StringBuilder();
        b.Append(Header).Append(": pulls of ").Append(registry).Append(" go through the local Swarm node's registry mirror,\n");
        b.Append("# which serves blobs from the swarm and resolves tags at the registry. If the node does not answer within the\n");
        b.Append("# dial timeout, or answers 404, containerd pulls from the server below itself.\n");
        b.Append("server = \"").Append(server.GetLeftPart(UriPartial.Authority)).Append("\"\n\n");
        b.Append("[host.\"").Append(mirror.GetLeftPart(UriPartial.Authority)).Append("\"]\n");
        b.Append("  capabilities = [\"pull\", \"resolve\"]\n");
        b.Append("  dial_timeout = \"").Append(dialTimeout).Append("\"\n");
        return b.ToString();
    }
}
