# Types of the C module _connection_core.c: the same class as connection_core.py.

from residentd.net.connection_core import ConnectionCore as ConnectionCore
