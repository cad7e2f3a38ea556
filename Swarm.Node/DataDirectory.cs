namespace Swarm.Node;

/// <summary>
/// Where a node keeps its key and content: <c>--data-dir</c>, else <c>$SWARM_DATA_DIR</c>, else <c>$XDG_DATA_HOME/swarm</c>,
/// else <c>~/.local/share/swarm</c>. Only its user may enter it (0700): it holds the node key, the task list with the
/// tasks' request headers and signed URLs, and the control socket.
/// </summary>
public static class DataDirectory
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode GroupOrOther = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    public static string Resolve(string? flag)
    {
        if (!string.IsNullOrWhiteSpace(flag)) return Path.GetFullPath(flag);
        string? env = Environment.GetEnvironmentVariable("SWARM_DATA_DIR");
        if (!string.IsNullOrWhiteSpace(env)) return Path.GetFullPath(env);
        string? xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        if (!string.IsNullOrWhiteSpace(xdg)) return Path.Combine(xdg, "swarm");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share", "swarm");
    }

    /// <summary>Creates the data directory, mode 0700, when it does not exist (an existing one is left as it is).</summary>
    public static void Create(string path)
    {
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(path);
        else Directory.CreateDirectory(path, OwnerOnly);
    }

    /// <summary>
    /// Makes an existing data directory 0700 when group or others may enter or read it. Returns the mode it had when it
    /// was changed, null when nothing needed doing. Throws <see cref="UnauthorizedAccessException"/> when it belongs to
    /// another user (only the owner may change it).
    /// </summary>
    public static UnixFileMode? Tighten(string path)
    {
        if (OperatingSystem.IsWindows()) return null;
        var mode = File.GetUnixFileMode(path);
        if ((mode & GroupOrOther) == 0) return null;
        File.SetUnixFileMode(path, OwnerOnly);
        return mode;
    }

    /// <summary>A mode as chmod writes it (0755).</summary>
    public static string Octal(UnixFileMode mode) => "0" + Convert.ToString((int)mode & 0xFFF, 8);
}
