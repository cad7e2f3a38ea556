namespace Swarm.Core.Storage;

/// <summary>The kind of a directory entry, as <c>stat(2)</c> reports it (<see cref="Missing"/>: nothing there).</summary>
public enum UnixFileType
{
    Missing,
    Regular,
    Directory,
    Symlink,
    Fifo,
    CharacterDevice,
    BlockDevice,
    Socket,
    Unknown,
}
