"""The way into the GPU origin: a remotely-managed Cloudflare Tunnel whose only public route is the
origin hostname → the runtime on localhost, with Access JWT validation at the tunnel (a request that
did not pass the Access application never reaches the runtime), a final `http_status:404` catch-all,
the proxied CNAME, and the connector token (secret) the GPU service runs cloudflared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cf

CATCH_ALL = {"service": "http_status:404"}


@dataclass(frozen=True)
class OriginTunnelArgs:
    account_id: str
    zone_id: str
    tunnel_name: str
    origin_hostname: str
    origin_port: int
    access_team_name: str
    access_aud: pulumi.Input[str]


class OriginTunnel(pulumi.ComponentResource):
    def __init__(self, name: str, args: OriginTunnelArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("steadytext:cloudflare:OriginTunnel", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.tunnel = cf.ZeroTrustTunnelCloudflared(
            f"{name}-tunnel",
            account_id=args.account_id,
            name=args.tunnel_name,
            config_src="cloudflare",
            opts=child,
        )
        self.config = cf.ZeroTrustTunnelCloudflaredConfig(
            f"{name}-config",
            account_id=args.account_id,
            tunnel_id=self.tunnel.id,
            config={
                "ingresses": [
                    {
                        "hostname": args.origin_hostname,
                        "service": f"http://localhost:{args.origin_port}",
                        "origin_request": {
                            "access": {
                                "required": True,
                                "team_name": args.access_team_name,
                                "aud_tags": [args.access_aud],
                            }
                        },
                    },
                    CATCH_ALL,
                ]
            },
            opts=child,
        )
        self.dns_record = cf.DnsRecord(
            f"{name}-dns",
            zone_id=args.zone_id,
            name=args.origin_hostname,
            type="CNAME",
            content=self.tunnel.id.apply(lambda tunnel_id: f"{tunnel_id}.cfargotunnel.com"),
            proxied=True,
            ttl=1,
            comment="steadytext GPU origin (Cloudflare Tunnel)",
            opts=child,
        )
        self.token = pulumi.Output.secret(
            cf.get_zero_trust_tunnel_cloudflared_token_output(
                account_id=args.account_id,
                tunnel_id=self.tunnel.id,
                opts=pulumi.InvokeOutputOptions(parent=self),
            ).token
        )
        self.register_outputs({"tunnel_id": self.tunnel.id, "token": self.token})
