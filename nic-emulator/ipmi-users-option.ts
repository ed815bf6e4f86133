/** `--ipmi-user NAME:PASSWORD[:PRIV]` (nic-emulator start and ipmi-users), checked before anything is sent or started. */
import { parseIpmiUserSpec, type IpmiUsersConfig } from '../firmware/ipmi/ipmi-users-record.js';
import { assertIpmiUsers } from '../firmware/ipmi/users.js';

/** `--ipmi-user` given (repeatable): lanplus on with those users, checked here (E_USAGE, exit 2); absent: undefined. */
export function ipmiUsersOption(specs: string[] | undefined): IpmiUsersConfig | undefined {
  if (!specs || specs.length === 0) return undefined;
  const config: IpmiUsersConfig = { enabled: true, users: specs.map(parseIpmiUserSpec) };
  assertIpmiUsers(config.users);
  return config;
}
