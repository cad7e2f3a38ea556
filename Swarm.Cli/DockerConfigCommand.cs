using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Swarm.Cli;

/// <summary>
/// <c>swarm docker-config</c>: daemon.json's <c>registry-mirrors</c> entry for this host's node, printed or merged into an
/// existing daemon.json (its other keys kept). Docker asks mirrors for docker.io images only, and sends no registry name,
/// so the node's <c>--upstream</c> must be docker.io (its default).
/// </summary>
internal static class DockerConfigCommand
{
    private const string Key = "registry-mirrors";

    public static Command Create()
    {
        var mirror = new Option<string>("--mirror")
        {
            Description = "The node's registry mirror URL. Default http://127.0.0.1:7401 (the node's default --mirror).",
            DefaultValueFactory = _ => "http://127.0.0.1:7401",
        };
        var write = new Option<string?>("--write")
        {
            Description = "Merge the entry into daemon.json FILE (created when missing; its other keys are kept), e.g. /etc/docker/daemon.json.",
        };
        var command = new Command("docker-config", "Print (or merge into daemon.json with --write) the registry-mirrors entry that points Docker at this host's Swarm node for pulls of docker.io images.")
        {
            mirror, write,
        };
        command.SetAction(parse =>
        {
            string? file = parse.GetValue(write);
            return ConfigFiles.Run("docker-config", () =>
            {
                var mirrorUrl = ContainerdConfigCommand.ParseHttpUrl(parse.GetValue(mirror)!, "--mirror");
                string url = mirrorUrl.GetLeftPart(UriPartial.Path).TrimEnd('/');
                var options = new JsonSerializerOptions { WriteIndented = true };
                if (file == null)
                {
                    Console.Out.WriteLine(new JsonObject { [Key] = new JsonArray(url) }.ToJsonString(options));
                }
                else
                {
                    string path = Path.GetFullPath(file);
                    var config = File.Exists(path) ? Read(path) : [];
                    Merge(config, url, path);
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    ConfigFiles.WriteAtomically(path, config.ToJsonString(options) + "\n");
                    Console.Error.WriteLine($"swarm: wrote {path}; dockerd reads it on reload (systemctl reload docker, or SIGHUP)");
                }
                Console.Error.WriteLine("swarm: Docker asks mirrors for docker.io images only (others go to their registry), and the node sends them to its --upstream: keep it docker.io (the default)");
                return ExitCodes.Ok;
            }, () => $"{(File.Exists(file) ? "read or write" : "write")} {file}");
        });
        return command;
    }

    private static JsonObject Read(string path)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new UsageException($"{path} is not valid JSON (line {(e.LineNumber ?? 0) + 1}): fix or remove it; it was left unchanged");
        }
        return node as JsonObject ?? throw new UsageException($"{path} is not a JSON object (daemon.json holds {{ \"key\": value, ... }}): fix or remove it; it was left unchanged");
    }

    /// <summary>Puts <paramref name="url"/> first in <c>registry-mirrors</c>, keeping the other mirrors already listed.</summary>
    private static void Merge(JsonObject config, string url, string path)
    {
        if (config[Key] is not JsonArray mirrors)
        {
            if (config.ContainsKey(Key)) throw new UsageException($"\"{Key}\" in {path} is not a list of URLs: fix it; the file was left unchanged");
            config[Key] = new JsonArray(url);
            return;
        }
        for (int i = mirrors.Count - 1; i >= 0; i--)
            if (mirrors[i] is JsonValue v && v.TryGetValue<string>(out var s) && s.TrimEnd('/') == url) mirrors.RemoveAt(i);
        mirrors.Insert(0, url);
    }
}
