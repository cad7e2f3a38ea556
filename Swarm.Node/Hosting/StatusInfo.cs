namespace Swarm.Node;

/// <summary>What <c>swarm status</c> shows.</summary>
public sealed record StatusInfo(string NodeId, string Listen, string DataDirectory, int DhtContacts, int Connections, int Content, long StoreBytes,
    long Quota, long UploadRate, long DownloadRate, int TasksRunning, long BytesFromPeers, long BytesFromOrigin, long BytesUploaded, double UptimeSeconds);
