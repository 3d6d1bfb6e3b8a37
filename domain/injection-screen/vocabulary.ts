/** Word classes (written naturally, folded at load: lower case, no diacritics). */
import { fold } from './tokens.js';

export function words(list: string): Set<string> {
  return new Set(
    list
      .trim()
      .split(/\s+/)
      .map((w) => fold(w.toLowerCase())),
  );
}

/** Verbs that throw away earlier instructions, in the languages attacks arrive in. */
export const OVERRIDE_VERBS = words(`
  ignore ignores ignoring ignored disregard disregards disregarding disregarded forget forgetting forgot
  override overriding overwrite bypass bypassing discard abandon dismiss neglect nevermind scrap
  ignorez ignorer oublie oubliez oublier oublies négligez outrepasse outrepassez
  ignoriere ignorier ignorieren ignoriert vergiss vergesse vergessen vergesst missachte missachten missachtet übergehe verwirf
  ignora ignorar ignores olvida olvide olvidar olvides omite descarta desestima desatiende
  ignorare dimentica dimenticare trascura tralascia esqueça esquecer desconsidere desconsiderar
  negeer negeren vergeet игнорируй игнорируйте проигнорируй забудь забудьте отбрось zignoruj ignoruj zapomnij`);
/** What an override targets: the model's instructions. */
export const INSTRUCTION_NOUNS = words(`
  instructions instruction directives directive guidelines guideline guidance prompt prompts programming guardrails safeguards
  systemprompt preprompt consignes consigne indications anweisungen anweisung instruktionen vorgaben systemvorgaben richtlinien
  systemanweisungen instrucciones instrucción indicaciones directrices directivas istruzioni indicazioni direttive
  instruções instrução orientações diretrizes instructies richtlijnen aanwijzingen инструкции инструкций указания промпт
  instrukcje polecenia`);
/** Weaker targets: they also name ordinary things ("ignore the lint rules"), so need a stronger qualifier. */
export const RULE_NOUNS = words(`
  rules rule directions constraints restrictions policies policy context commands orders limits limitations training ethics filters
  règles regeln befehle reglas normas órdenes regole regras regels правила zasady`);
/** "previous", "above", "your"...: the qualifiers that point an override at the model's own setup. */
export const PRIOR = words(`
  previous prior above earlier preceding original initial old former foregoing existing given your yours system developer
  before previously
  précédentes précédente précédents antérieures antérieurs dessus initiales initiaux originales anciennes tes vos ton votre système avant auparavant
  vorherigen vorherige vorigen bisherigen bisherige obigen obige ursprünglichen früheren alten deine deinen deiner dein vorher bisher zuvor
  anteriores anterior previas previos originales iniciales antiguas tus sus sistema antes
  precedenti precedente originali iniziali tue tuoi sopra prima originais iniciais suas seus
  vorige eerdere oorspronkelijke jouw предыдущие предыдущих прежние твои ваши системные poprzednie wcześniejsze`);
/** "all", "any": qualify an override only when the target is unambiguous. */
export const ALL = words('all any every toutes tous alle todas todos tutte tutti todas все wszystkie');
export const EVERYTHING = words('everything all tout alles todo tutto tudo всё все wszystko');
export const TOLD = words(
  `told said taught learned instructed given received got dit dite appris t'a t'ont gesagt beigebracht dijeron dicho enseñado detto dito сказали`,
);
/** Verbs of obeying, for "do not follow your instructions". */
export const FOLLOW_VERBS = words(`
  follow following obey heed adhere respect comply listen suivre suis suivez respecte respectez obéis obéissez
  befolge befolgen beachte beachten folge sigas siga seguir sigue obedezcas obedecer respetes seguire segui obbedire volg volgen следуй`);
export const NEGATIONS = words(`not don't dont never no stop longer ne pas plus nicht kein keine nie niemals nunca non mai niet не`);
/** Words that declare earlier instructions dead. */
export const VOID_WORDS = words(`
  void obsolete cancelled canceled revoked outdated invalid invalidated superseded supersede supersedes overridden null
  rescinded expired nichtig ungültig aufgehoben annulées caduques obsolètes anuladas obsoletas inválidas annullate`);
export const NEW_WORDS = words(
  'new nouvelle nouvelles nouveau nouveaux neue neuen neues nueva nuevas nuevo nuova nuove nova novas nieuwe новые новая',
);
export const TASK_NOUNS = words(`
  instructions instruction consignes anweisung anweisungen aufgabe instrucciones tarea misión mission task istruzioni compito
  instruções tarefa instructies taak инструкции задача orders directives`);
export const YOUR = words('your ta ton tes votre vos deine dein deinen tu tus tua tuo sua je jouw твоя твои');

/** Verbs that make the model hand over what it holds. */
export const REVEAL_VERBS = words(`
  reveal print show output repeat display tell give share leak dump disclose expose recite quote echo spell paste
  révèle révélez affiche affichez montre montrez donne donnez répète répétez imprime dis
  zeige zeig gib verrate wiederhole drucke ausgeben nenne
  revela muestra muéstrame dime imprime repite enseña stampa mostra rivela ripeti revele mostre imprima diga
  выведи покажи раскрой`);
/** What is secret about the model itself. */
export const PROMPT_NOUNS = words(`
  prompt systemprompt preprompt instructions instruction guidelines directives rules consignes anweisungen instrucciones
  istruzioni instruções промпт инструкции`);
export const SECRET_QUALIFIERS = words(`
  your system initial hidden secret original full exact entire confidential internal ton tes votre vos système initiales cachées
  dein deine deinen deiner system versteckten geheimen tu tus su sus ocultas secretas sistema iniziali nascoste tuo tue
  suas системный скрытые`);
/** Verbs that move data out. */
export const SEND_VERBS = words(`
  send post upload forward exfiltrate exfiltrating transmit leak email e-mail mail append attach submit curl wget fetch
  envoie envoyez envoyer transfère schick schicke sende senden übermittle envía envia manda mande enviar invia inviare
  отправь`);
/** What must not leave. */
export const SECRET_NOUNS = words(`
  key keys apikey secret secrets token tokens password passwords passwd credentials credential environment .env .ssh .aws .netrc
  .npmrc .pypirc .git-credentials .kube id_rsa id_ed25519
  cookies cookie session history conversation transcript database contraseña clave claves passwort zugangsdaten mot historial
  conversación пароль`);
/** Where data would go: a URL, an address, a listener. */
export const isDestination = (w: string) =>
  w === '@' || w.startsWith('http') || /^\d{1,3}(?:\.\d{1,3}){3}$/.test(w) || w === 'webhook' || w === 'nc' || w === 'netcat';
export const isSecret = (w: string) =>
  SECRET_NOUNS.has(w) || /(?:^|_)(?:api_?key|key|token|secret|password|passwd|pwd|credentials?)(?:_|$)/.test(w);
/** A credential right after "Bearer" or "Authorization" is being used to call an API, not sent away. */
const AUTH_HEADER_WORDS = words('bearer authorization basic');
export const isSentSecret = (w: string, ws: readonly string[], i: number) => isSecret(w) && !AUTH_HEADER_WORDS.has(ws[i - 1]);

export const DISABLE_VERBS = words(
  'disable skip bypass deactivate circumvent desactiva desactive désactive désactivez deaktiviere deaktivieren disattiva omite salta umgehe',
);
export const CHECK_NOUNS = words(`
  approval approvals confirmation confirmations verification review security safety audit logging validation
  freigabeprüfung freigabe prüfung sicherheitsprüfung verificación confirmación aprobación vérification contrôle controlli verifica`);

/** Words that can start a window rule. */
const ANCHORS = new Set([
  ...OVERRIDE_VERBS,
  ...FOLLOW_VERBS,
  ...INSTRUCTION_NOUNS,
  ...RULE_NOUNS,
  ...NEW_WORDS,
  ...DISABLE_VERBS,
  ...REVEAL_VERBS,
  ...SEND_VERBS,
  ...SECRET_NOUNS,
]);
/** Every word the rules know: spaced-out or leetspeak words are read as words only if they are one of these. */
export const VOCABULARY = new Set([
  ...ANCHORS,
  ...PRIOR,
  ...ALL,
  ...EVERYTHING,
  ...TOLD,
  ...NEGATIONS,
  ...VOID_WORDS,
  ...TASK_NOUNS,
  ...YOUR,
  ...PROMPT_NOUNS,
  ...SECRET_QUALIFIERS,
  ...CHECK_NOUNS,
  ...words('the a an and to me you my of then now all print this that it is are'),
]);
