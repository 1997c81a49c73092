// smsc.js - a minimal SMSC built on the npm "smpp" package, so our ESME
// session is also tested against an SMPP implementation that is not ours.
//   node test/peers/smsc.js PORT
// Accepts binds from system_id "smsys" / password "secret", answers each
// submit_sm with an upper-case hex message id, then sends a delivery
// receipt (deliver_sm, esm_class 4) that reports the same id in DECIMAL,
// by TLV and in the text, as some real SMSCs do. Every event is one JSON
// line on stdout, which the C test reads.
'use strict';
const path = require('path');
const smpp = require(path.join(__dirname, 'node_modules', 'smpp'));

const port = parseInt(process.argv[2] || '2775', 10);
let nextId = 0x1F3A0;

function log(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function textOf(sm) {
  if (sm === undefined || sm === null) return '';
  if (typeof sm === 'string') return sm;
  if (Buffer.isBuffer(sm)) return sm.toString('hex');
  if (typeof sm.message === 'string') return sm.message;
  if (Buffer.isBuffer(sm.message)) return sm.message.toString('hex');
  return '';
}

function yymmddhhmm(d) {
  const p = (n) => String(n).padStart(2, '0');
  return p(d.getUTCFullYear() % 100) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) +
    p(d.getUTCHours()) + p(d.getUTCMinutes());
}

const server = smpp.createServer((session) => {
  let bound = false;
  const onBind = (pdu) => {
    const ok = pdu.system_id === 'smsys' && pdu.password === 'secret';
    log({ event: 'bind', command: pdu.command, system_id: pdu.system_id, ok });
    session.send(pdu.response({ command_status: ok ? smpp.ESME_ROK : smpp.ESME_RBINDFAIL }));
    bound = ok;
  };
  session.on('bind_transceiver', onBind);
  session.on('bind_transmitter', onBind);
  session.on('bind_receiver', onBind);
  session.on('enquire_link', (pdu) => {
    log({ event: 'enquire_link' });
    session.send(pdu.response());
  });
  session.on('unbind', (pdu) => {
    log({ event: 'unbind' });
    session.send(pdu.response());
    session.close();
  });
  session.on('submit_sm', (pdu) => {
    if (!bound) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    const n = nextId++;
    const id = n.toString(16).toUpperCase();
    log({ event: 'submit_sm', seq: pdu.sequence_number, dst: pdu.destination_addr,
          dc: pdu.data_coding, text: textOf(pdu.short_message), id });
    session.send(pdu.response({ message_id: id }));
    if (!(pdu.registered_delivery & 1)) return;
    setTimeout(() => {
      const now = yymmddhhmm(new Date());
      const text = `id:${n} sub:001 dlvrd:001 submit date:${now} done date:${now} ` +
        'stat:DELIVRD err:000 text:';
      session.deliver_sm({
        source_addr: pdu.destination_addr,
        destination_addr: pdu.source_addr,
        esm_class: 4,
        short_message: text,
        receipted_message_id: String(n),
        message_state: 2,
      }, (resp) => {
        log({ event: 'deliver_sm_resp', id: String(n), status: resp.command_status });
      });
      log({ event: 'deliver_sm', id: String(n) });
    }, 20);
  });
  session.on('error', (e) => log({ event: 'session_error', error: String(e) }));
});

server.listen(port, '127.0.0.1', () => log({ event: 'listening', port }));
const stop = () => { log({ event: 'stopping' }); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
