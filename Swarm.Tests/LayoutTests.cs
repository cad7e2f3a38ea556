using System.Text.RegularExpressions;

namespace Swarm.Tests;

/// <summary>
/// The layout rules of docs/architecture.md ("Dependency rules") hold in the source tree this test was built from: which
/// Swarm namespaces each project and each folder of Swarm.Core refers to (using directives and fully qualified names,
/// crefs included), assemblies that see internals (the tests only), where the DHT simulation lives, Core's messages
/// naming no command-line flag, Swarm.Node's files (at most 300 lines, one top-level type each) and Swarm.Core/Exchange's
/// (under 400 lines). Every violation is listed in the failure.
/// </summary>
public partial class LayoutTests
{
    private static string Root()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Swarm.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no Swarm.sln above {AppContext.BaseDirectory}");
    }

    private static IEnumerable<string> Sources(string root, string folder, bool recursive = true) =>
        Directory.EnumerateFiles(Path.Combine(root, folder), "*.cs", recursive ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly)
            .Where(f => !f.Contains("/obj/", StringComparison.Ordinal) && !f.Contains("/bin/", StringComparison.Ordinal)).Order(StringComparer.Ordinal);

    [GeneratedRegex(@"(?<![A-Za-z0-9_.])Swarm\.[A-Z][A-Za-z]*(\.[A-Z][A-Za-z]*)?")]
    private static partial Regex SwarmName();

    [GeneratedRegex(@"^\s*namespace [A-Za-z0-9_.]+\s*[;{]?\s*$")]
    private static partial Regex NamespaceLine();

    [GeneratedRegex(@"cref=""[^""]*""")]
    private static partial Regex Cref();

    [GeneratedRegex(@"""([^""]*[^-a-z])?--[a-z][a-z-]+")]
    private static partial Regex FlagInString();

    [GeneratedRegex(@"^(public |internal |file )?((sealed|static|abstract|partial|readonly|ref|unsafe) )*(class|struct|record|interface|enum|delegate) ")]
    private static partial Regex TopLevelType();

    /// <summary>(line number, namespace) for every Swarm namespace the file refers to.</summary>
    private static IEnumerable<(int Line, string Name)> References(string file)
    {
        int n = 0;
        foreach (string line in File.ReadLines(file))
        {
            n++;
            string text = line.TrimStart();
            if (NamespaceLine().IsMatch(line)) continue;
            if (text.StartsWith("///", StringComparison.Ordinal)) text = string.Join(" ", Cref().Matches(text).Select(m => m.Value)); // the compiler binds crefs
            else if (text.StartsWith("//", StringComparison.Ordinal)) continue;
            foreach (Match m in SwarmName().Matches(text)) yield return (n, m.Value);
        }
    }

    private static readonly Dictionary<string, string[]> CoreFolders = new()
    {
        ["Content"] = [],
        ["Identity"] = ["Content"],
        ["Storage"] = ["Content", "Identity"],
        ["Wire"] = ["Content", "Identity"],
        ["Dht"] = ["Content", "Identity"],
        ["Sources"] = ["Content", "Storage"],
        ["Exchange"] = ["Content", "Identity", "Storage", "Wire", "Dht", "Sources"],
    };

    [Fact]
    public void TheCodeKeepsTheLayoutRules()
    {
        string root = Root();
        var violations = new List<string>();
        string Rel(string f) => Path.GetRelativePath(root, f);

        // Projects: Cli -> Node -> Core.
        foreach (var (project, forbidden) in new[] { ("Swarm.Core", new[] { "Swarm.Node", "Swarm.Cli", "Swarm.Tests", "Swarm.Benchmarks" }),
            ("Swarm.Node", ["Swarm.Cli", "Swarm.Tests", "Swarm.Benchmarks"]), ("Swarm.Cli", ["Swarm.Tests", "Swarm.Benchmarks"]) })
            foreach (string file in Sources(root, project))
                foreach (var (line, name) in References(file))
                    if (forbidden.Any(f => name == f || name.StartsWith(f + ".", StringComparison.Ordinal)))
                        violations.Add($"dependency: {Rel(file)}:{line}: {project} refers to {name}");

        // Inside Core: each folder on the folders the rules allow; files at Core's root on none.
        foreach (string dir in Directory.EnumerateDirectories(Path.Combine(root, "Swarm.Core")).Select(d => Path.GetFileName(d)).Where(d => d is not ("obj" or "bin")))
            if (!CoreFolders.ContainsKey(dir)) violations.Add($"dependency: Swarm.Core/{dir} is a folder the rules do not place (docs/architecture.md)");
        foreach (var (folder, allowed) in CoreFolders.Append(new("", [])))
        {
            var files = folder == "" ? Sources(root, "Swarm.Core", recursive: false) : Sources(root, Path.Combine("Swarm.Core", folder));
            foreach (string file in files)
                foreach (var (line, name) in References(file))
                {
                    if (!name.StartsWith("Swarm.Core.", StringComparison.Ordinal)) continue;
                    string used = name["Swarm.Core.".Length..];
                    if (used != folder && !allowed.Contains(used))
                        violations.Add($"dependency: {Rel(file)}:{line}: Swarm.Core/{folder} refers to {name} (allowed: {(allowed.Length == 0 ? "none" : string.Join(", ", allowed))})");
                }
        }

        // Internals are seen by the tests only.
        foreach (string file in Directory.EnumerateFiles(root, "*.csproj", SearchOption.AllDirectories).Concat(Directory.EnumerateFiles(root, "*.props", SearchOption.AllDirectories))
            .Where(f => !f.Contains("/obj/", StringComparison.Ordinal)))
            foreach (Match m in Regex.Matches(File.ReadAllText(file), @"InternalsVisibleTo Include=""([^""]*)"""))
                if (m.Groups[1].Value != "Swarm.Tests") violations.Add($"internals: {Rel(file)}: InternalsVisibleTo {m.Groups[1].Value}");
        foreach (string project in new[] { "Swarm.Core", "Swarm.Node", "Swarm.Cli" })
            foreach (string file in Sources(root, project))
            {
                string text = File.ReadAllText(file);
                if (text.Contains("[assembly: InternalsVisibleTo", StringComparison.Ordinal)) violations.Add($"internals: {Rel(file)} declares InternalsVisibleTo");
                if (Regex.IsMatch(text, @"(class|record) DhtSimulation\b")) violations.Add($"simulation: {Rel(file)} declares DhtSimulation (test and benchmark support)");
            }

        // Core's messages state facts; the CLI adds the flag to use.
        foreach (string file in Sources(root, "Swarm.Core"))
        {
            int n = 0;
            foreach (string line in File.ReadLines(file))
            {
                n++;
                if (!line.TrimStart().StartsWith("//", StringComparison.Ordinal) && FlagInString().IsMatch(line))
                    violations.Add($"message: {Rel(file)}:{n}: a Core message names a command-line flag");
            }
        }

        // Swarm.Node: files of at most 300 lines, one top-level type each.
        foreach (string file in Sources(root, "Swarm.Node"))
        {
            var lines = File.ReadAllLines(file);
            if (lines.Length > 300) violations.Add($"size: {Rel(file)} has {lines.Length} lines (at most 300)");
            int types = lines.Count(l => TopLevelType().IsMatch(l));
            if (types > 1) violations.Add($"types: {Rel(file)} declares {types} top-level types (one a file)");
        }

        // Swarm.Core/Exchange (issue 16): files of under 400 lines.
        foreach (string file in Sources(root, Path.Combine("Swarm.Core", "Exchange")))
        {
            int lines = File.ReadAllLines(file).Length;
            if (lines >= 400) violations.Add($"size: {Rel(file)} has {lines} lines (under 400)");
        }

        Assert.True(violations.Count == 0, $"{violations.Count} layout violation(s):\n" + string.Join("\n", violations));
    }
}
