// What the page knows of the visit, shared by the screens. Names arrive from the server and
// live here in memory only.
export const state = {
  token: null,
  me: null,
  role: null,
  visitType: null,
  mayPublish: [],
  iceServers: [],
  recordingEnabled: false,
  /** participant id -> participant info (never the recorder). */
  participants: new Map(),
  /** participant id -> 'asked' | 'accepted' | 'declined' (clinicians only). */
  consents: new Map(),
  recorderPresent: false,
  queue: [],
  queueReceivedAt: 0,
  recording: { active: false, recorded: false, you: false, paused: false },
  consentVersion: null,
  /** null | 'asked' | 'accepted' | 'declined': my own answer. */
  consent: null,
  call: null,
  ended: false,
  unloading: false,
  admitted: false,
};

export const CLINICIANS = ['provider', 'chaperone', 'supervisor'];
export const isClinician = () => CLINICIANS.includes(state.role);
export const isProvider = () => state.role === 'provider';
