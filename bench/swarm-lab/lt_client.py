#!/usr/bin/python3
"""The lab's BitTorrent baseline: one libtorrent-rasterbar client (Debian's python3-libtorrent, for /usr/bin/python3).

usage: lt_client.py TORRENT SAVE_DIR LISTEN_IP [--seed] [--out FILE]
  --seed   SAVE_DIR already holds the complete file: check it and seed (the origin host)
  --out    when the download is complete, hard-link the file to FILE (the lab's completion signal, as `swarm get -o`)
Prints "seeding" to stdout once a --seed client's first announce has been answered (the lab then starts the hosts).
Runs until killed, seeding, as a `swarm get` keeps serving its peers after it is done. TCP only, no DHT, LSD, UPnP or
NAT-PMP, 8 unchoke slots (libtorrent's default is 8 too, stated so that the lab says what it compares with); peers come
from the tracker in the torrent. Exits 1 with a message on a torrent or storage error."""
import argparse
import os
import sys
import time

import libtorrent as lt


def main(argv):
    parser = argparse.ArgumentParser(prog="lt_client.py", description="the lab's libtorrent client")
    parser.add_argument("torrent")
    parser.add_argument("save_dir")
    parser.add_argument("ip")
    parser.add_argument("--seed", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    torrent, save_dir, ip, seed, out = args.torrent, args.save_dir, args.ip, args.seed, args.out
    settings = {
        "listen_interfaces": f"{ip}:6881",
        "outgoing_interfaces": ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "unchoke_slots_limit": 8,
        "announce_to_all_trackers": True,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification
        | lt.alert.category_t.storage_notification | lt.alert.category_t.tracker_notification,
    }
    session = lt.session(settings)
    info = lt.torrent_info(torrent)
    params = lt.add_torrent_params()
    params.ti = info
    params.save_path = save_dir
    if seed:
        params.flags |= lt.torrent_flags.seed_mode
    handle = session.add_torrent(params)
    done = seed
    announced = False
    while True:
        session.wait_for_alert(1000)
        for alert in session.pop_alerts():
            if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
                sys.exit(f"lt_client.py: {alert.message()}")
            if isinstance(alert, lt.tracker_reply_alert) and seed and not announced:
                announced = True
                print("seeding", flush=True)
            if isinstance(alert, lt.torrent_finished_alert) and not done:
                done = True
                if out:
                    path = os.path.join(save_dir, info.files().file_path(0))
                    os.link(path, out + ".tmp")
                    os.rename(out + ".tmp", out)
                print(f"finished after {time.monotonic() - START:.3f} s", file=sys.stderr, flush=True)
        if not handle.is_valid():
            sys.exit("lt_client.py: the torrent was removed")


START = time.monotonic()
if __name__ == "__main__":
    main(sys.argv[1:])
