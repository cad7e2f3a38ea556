namespace Swarm.Node;

/// <summary>Where a node keeps its key and content: <c>--data-dir</c>, else <c>$SWARM_DATA_DIR</c>, else <c>$XDG_DATA_HOME/swarm</c>, else <c>~/.local/share/swarm</c>.</summary>
public static class DataDirectory
{
    public static string Resolve(string? flag)
    {
        if (!string.IsNullOrWhiteSpace(flag)) return Path.GetFullPath(flag);
        string? env = Environment.GetEnvironmentVariable("SWARM_DATA_DIR");
        if (!string.IsNullOrWhiteSpace(env)) return Path.GetFullPath(env);
        string? xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        if (!string.IsNullOrWhiteSpace(xdg)) return Path.Combine(xdg, "swarm");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share", "swarm");
    }
}
