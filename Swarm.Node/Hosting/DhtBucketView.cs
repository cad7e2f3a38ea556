using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Swarm.Core.Content;
using Swarm.Core.Exchange;

namespace Swarm.Node;

/// <summary>One routing-table bucket: the ids in it share this many leading bits with the node's own.</summary>
public sealed record DhtBucketView(int SharedPrefixBits, int Nodes);
