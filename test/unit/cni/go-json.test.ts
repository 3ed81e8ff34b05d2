import { goFields } from '../../../lib/cni/go-json';

describe('goFields (encoding/json key matching)', () => {
  const fields = ['hostPort', 'containerPort', 'hostIP'] as const;

  it.each([
    [{ hostPort: 1 }, { hostPort: 1 }],
    [{ HostPort: 1, ContainerPort: 2, HostIP: 'x' }, { hostPort: 1, containerPort: 2, hostIP: 'x' }],
    [{ HOSTPORT: 1, hostip: 'y' }, { hostPort: 1, hostIP: 'y' }],
    [{ HostPort: 1, hostPort: 2 }, { hostPort: 2 }], // the later key wins, as in Go
    [{ hostPort: 2, HostPort: 1 }, { hostPort: 1 }],
    [{ other: true, Host_Port: 3 }, { other: true, Host_Port: 3 }], // no match: kept as it is
  ])('%j -> %j', (raw, want) => expect(goFields(raw, fields)).toEqual(want));
});
